// The book list, a page at a time by cursor, and the dialogs to add, edit and delete a book.

import { $, clearMessages, clone, fillCategories, linkHints, mount, notify, onSubmit, showError } from "./ui.js";

const PER_PAGE = 12;

export class BooksView {
  constructor(api) {
    this.api = api;
    this.category = "";
    this.firstPage();
  }

  /** Cursor pages: `after` of every page visited so far (the first page has none), so the
   *  previous page is the one before in this list; each page costs the API the same. */
  firstPage() {
    this.cursors = [null];
    this.index = 0;
  }

  async show({ focus = true } = {}) {
    this.view = clone("books-view");
    const filter = $("#filter-category", this.view);
    fillCategories(filter);
    filter.value = this.category;
    filter.addEventListener("change", () => {
      this.category = filter.value;
      this.firstPage();
      this.load().catch(showError);
    });
    $("[data-action=add]", this.view).addEventListener("click", (event) => this.edit(null, event.currentTarget));
    $("[data-action=previous]", this.view).addEventListener("click", () => this.turn(-1));
    $("[data-action=next]", this.view).addEventListener("click", () => this.turn(1));
    mount(this.view, { focus });
    await this.load();
  }

  turn(step) {
    if (step > 0) this.cursors[this.index + 1] = this.nextCursor;
    this.index += step;
    this.load()
      .then(() => $("#books-title").focus())
      .catch(showError);
  }

  async load() {
    const query = new URLSearchParams({ limit: PER_PAGE });
    const after = this.cursors[this.index];
    if (after) query.set("after", after);
    if (this.category) query.set("category", this.category);
    const { data, meta } = await this.api.request("GET", `/books/?${query}`);
    if (!data.length && this.index > 0) {
      // The last book of the last page went: show the page before.
      this.index -= 1;
      return this.load();
    }
    this.nextCursor = meta.next_cursor;
    this.render(data);
  }

  render(books) {
    const list = $("[data-slot=list]", this.view);
    list.replaceChildren(...books.map((book) => this.card(book)));
    $("[data-slot=empty]", this.view).hidden = books.length > 0;
    const pager = $("[data-slot=pager]", this.view);
    pager.hidden = this.index === 0 && !this.nextCursor;
    $("[data-slot=page]", pager).textContent = `Page ${this.index + 1}`;
    $("[data-action=previous]", pager).disabled = this.index === 0;
    $("[data-action=next]", pager).disabled = !this.nextCursor;
  }

  card(book) {
    const item = clone("book-card");
    const titleId = `book-${book.id}-title`;
    $("article", item).setAttribute("aria-labelledby", titleId);
    const cover = $(".cover", item);
    cover.src = book.image_url;
    cover.alt = `Cover of ${book.title}`;
    const heading = $(".book-title", item);
    heading.id = titleId;
    heading.textContent = book.title;
    $(".tag", item).textContent = book.category;
    $(".description", item).textContent = book.description;
    for (const hidden of item.querySelectorAll(".visually-hidden")) hidden.textContent = ` ${book.title}`;
    $("[data-action=edit]", item).addEventListener("click", (event) => this.edit(book, event.currentTarget));
    $("[data-action=delete]", item).addEventListener("click", (event) => this.remove(book, event.currentTarget));
    return item;
  }

  /** The add (book null) or edit dialog. */
  edit(book, opener) {
    const dialog = openDialog("book-dialog", opener);
    const form = $("form", dialog);
    const region = $(".alert", dialog);
    $("#book-dialog-title", dialog).textContent = book ? `Edit “${book.title}”` : "Add a book";
    fillCategories(form.elements.category);
    if (book) {
      form.elements.title.value = book.title;
      form.elements.category.value = book.category;
      form.elements.description.value = book.description;
      $("[data-slot=cover-hint]", dialog).textContent = "Leave empty to keep the current cover. JPEG, PNG, GIF or WebP, up to 5 MB.";
    }
    showPreview(dialog);
    onSubmit(
      form,
      async () => {
        const body = new FormData(form);
        if (!form.elements.cover_image.files.length) body.delete("cover_image");
        const progress = $("progress", dialog);
        $("[data-slot=progress-field]", dialog).hidden = !body.has("cover_image");
        progress.value = 0;
        const onProgress = (share) => {
          progress.value = Math.round(share * 100);
          progress.textContent = `${progress.value}%`;
        };
        const reply = book
          ? await this.api.upload("PUT", `/books/${book.id}`, body, onProgress)
          : await this.api.upload("POST", "/books/", body, onProgress);
        dialog.close();
        if (!book) this.firstPage(); // the newest book is first
        await this.load();
        notify(book ? `Saved “${reply.data.title}”.` : `Added “${reply.data.title}”.`);
      },
      { region },
    );
  }

  remove(book, opener) {
    const dialog = openDialog("delete-dialog", opener);
    $("#delete-dialog-title", dialog).textContent = `Delete “${book.title}”?`;
    onSubmit(
      $("form", dialog),
      async () => {
        await this.api.request("DELETE", `/books/${book.id}`);
        dialog.close();
        await this.load();
        notify(`Deleted “${book.title}”.`);
        $("#books-title").focus();
      },
      { region: $(".alert", dialog) },
    );
  }
}

/** A modal dialog from a template; Escape or Cancel closes it, and focus goes back to `opener`. */
function openDialog(templateId, opener) {
  clearMessages();
  const dialog = clone(templateId);
  document.body.append(dialog);
  linkHints(dialog);
  $("[data-action=cancel]", dialog).addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  dialog.showModal();
  return dialog;
}

/** A preview of the chosen cover, from a blob: URL (nothing is uploaded until Save). */
function showPreview(dialog) {
  const input = $("input[type=file]", dialog);
  const preview = $("[data-slot=preview]", dialog);
  let url = null;
  input.addEventListener("change", () => {
    if (url) URL.revokeObjectURL(url);
    const file = input.files[0];
    url = file ? URL.createObjectURL(file) : null;
    preview.hidden = !url;
    if (url) preview.src = url;
  });
  dialog.addEventListener("close", () => url && URL.revokeObjectURL(url));
}
