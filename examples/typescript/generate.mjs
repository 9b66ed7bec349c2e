// Types for client.ts from the API's OpenAPI document: `node generate.mjs <url or file> <api.d.ts>`.
// openapi-typescript with its default options, plus the transform its documentation gives for
// files: a part the document marks `format: binary` is a Blob, so a cover type-checks as one.
import { writeFileSync } from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const [source, target] = process.argv.slice(2);
const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));
const ast = await openapiTS(source.includes("://") ? new URL(source) : new URL(source, `file://${process.cwd()}/`), {
  transform(schemaObject) {
    if (schemaObject.format === "binary") {
      return BLOB;
    }
  },
});
writeFileSync(target, astToString(ast));
