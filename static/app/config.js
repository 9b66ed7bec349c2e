// Where the API is. Empty: the origin that serves this page (the API's own /app/).
// Serving the app from elsewhere, set the API's base URL here, e.g. "https://api.example.com";
// an `api` query parameter (…/index.html?api=http://localhost:5000) overrides it.
export const config = {
  api: "",
};
