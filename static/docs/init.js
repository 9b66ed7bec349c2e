// Swagger UI for /openapi.json. "Authorize" takes an access token from POST /users/login.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // A pasted token stays in this page's memory only: kept in localStorage, it would
    // outlive the tab and be read by the next person at a shared browser.
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
});
