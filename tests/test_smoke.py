def test_banner(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json()["error"] is None


def test_create_and_list_book(client, auth, create_book):
    headers = auth.headers()
    book = create_book(headers)
    listed = client.get("/books/", headers=headers).get_json()
    assert [b["id"] for b in listed["data"]] == [book["id"]]
    with client.get(book["image_url"]) as image:
        assert image.status_code == 200
