// Where the API is: the one address this app sends passwords and tokens to. Empty: the origin
// that serves this page (the API's own /app/). Serving the app from another origin, name the
// API's base URL here, e.g. "https://api.example.com", and serve the page with the policy in
// docs/browser-app.md. Nothing in the page's address can change it.
export const config = {
  api: "",
};
