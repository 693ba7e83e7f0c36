// Starts Swagger UI on /schema (app/api/openapi.py): from this file rather than an inline
// script, so that the docs' CSP allows scripts of this origin only.
"use strict";

SwaggerUIBundle({
  url: document.getElementById("swagger-ui").getAttribute("data-document"),
  dom_id: "#swagger-ui",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis],
});
