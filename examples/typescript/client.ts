// A client of the Book Library API as a frontend developer writes one: types generated from
// /openapi.json by openapi-typescript (generate.mjs writes api.d.ts), calls through openapi-fetch.
// With `make run` going, from the repository's folder (after `npm ci`):
//   node examples/typescript/generate.mjs http://127.0.0.1:5000/openapi.json examples/typescript/api.d.ts
//   npx tsc --strict -p examples/typescript && node examples/typescript/build/client.js
// API_URL names another server; COVER_PATH another cover; MAIL_DIR the folder where a server
// without MAIL_URL writes its mails (instance/mail), where the sign-up mail's link is read.
// It signs up, logs in, adds books with covers, walks the list by cursor, updates a book with
// If-Match, refreshes its tokens, turns the second factor on, logs in with it, and logs out.
import { createHmac, randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./api";

type Book = components["schemas"]["BookOut"];

const API_URL = process.env.API_URL ?? "http://127.0.0.1:5000";
const COVER = process.env.COVER_PATH ?? "examples/postman/cover.png";
const MAIL_DIR = process.env.MAIL_DIR ?? "instance/mail";
const api = createClient<paths>({ baseUrl: API_URL });

let accessToken: string | undefined;
const bearer: Middleware = {
  onRequest({ request }) {
    if (accessToken) request.headers.set("Authorization", `Bearer ${accessToken}`);
    return request;
  },
};
api.use(bearer);

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`failed: ${what}`);
  console.log(`ok - ${what}`);
}

// The token of the newest mailed link to `email`, from the development mail files (a reader
// with real mail copies it from the mail). The server's sender writes the file within moments.
async function mailedToken(email: string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const mails = readdirSync(MAIL_DIR).filter((name) => name.endsWith(".eml")).sort();
    for (const name of mails.reverse()) {
      const text = readFileSync(join(MAIL_DIR, name), "utf8");
      const token = /#token=([A-Za-z0-9_-]+)/.exec(text)?.[1];
      if (token && text.includes(`To: ${email}`)) return token;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`failed: no mailed link to ${email} in ${MAIL_DIR}`);
}

// A book's fields and its cover as multipart/form-data: the cover is a Blob in the generated types.
function asForm(body: Record<string, string | Blob | undefined>): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(body)) {
    if (value instanceof Blob) form.append(name, value, "cover.png");
    else if (value !== undefined) form.append(name, value);
  }
  return form;
}

async function signUp(email: string, password: string): Promise<void> {
  const { data, error, response } = await api.POST("/users/", { body: { name: "Ada Lovelace", email, password } });
  check(data && !error, `sign-up answers ${response.status}`);
  // 201 carries the account; 202 (addresses must be verified first) carries none.
  if (data.data !== null) check(data.data.email === email, "the new account has the address");
}

async function logIn(email: string, password: string) {
  const { data, error } = await api.POST("/users/login", { body: { email, password } });
  if (!data) throw new Error(`login refused: ${error?.message}`);
  return data.data;
}

async function addBook(title: string, cover: Blob): Promise<Book> {
  const { data, error, response } = await api.POST("/books/", {
    body: { title, category: "science", cover_image: cover },
    bodySerializer: asForm,
  });
  if (!data) throw new Error(`create refused (${response.status}): ${JSON.stringify(error)}`);
  return data.data;
}

async function everyBookByCursor(limit: number): Promise<Book[]> {
  const books: Book[] = [];
  let after: string | undefined;
  for (;;) {
    const { data } = await api.GET("/books/", { params: { query: after ? { limit, after } : { limit } } });
    if (!data) throw new Error("list refused");
    if (data.meta.paging !== "cursor") throw new Error("answered by page number");
    books.push(...data.data);
    if (data.meta.next_cursor === null) return books;
    after = data.meta.next_cursor;
  }
}

// The code an authenticator app shows for a base32 secret (RFC 6238: SHA-1, 6 digits, 30 s).
function totp(secret: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bits = [...secret.replace(/=+$/, "")].map((c) => alphabet.indexOf(c).toString(2).padStart(5, "0")).join("");
  const key = Buffer.from((bits.match(/.{8}/g) ?? []).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  const hmac = createHmac("sha1", key).update(counter).digest();
  const offset = (hmac[hmac.length - 1] ?? 0) & 0xf;
  return ((hmac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, "0");
}

async function main(): Promise<void> {
  const email = `ts-${randomUUID().slice(0, 12)}@example.com`;
  const password = "Corr3ct horse battery!";
  await signUp(email, password);

  const login = await logIn(email, password);
  if (login.mfa_required) throw new Error("no second factor is on yet");
  accessToken = login.token;
  check(login.email === email && login.refresh_token, "login without a second factor gives tokens");

  const cover = new Blob([readFileSync(COVER)], { type: "image/png" });
  const titles = ["Dune", "Solaris", "Foundation"];
  const added: Book[] = [];
  for (const title of titles) added.push(await addBook(title, cover));
  const first = added[0];
  check(first && first.category === "science" && first.image_url.startsWith("http"), "a book is created with a cover");

  const walked = await everyBookByCursor(1);
  check(walked.map((book) => book.title).join() === [...titles].reverse().join(), "a cursor walk sees every book once");

  const read = await api.GET("/books/{book_id}", { params: { path: { book_id: first.id } } });
  const etag = read.response.headers.get("ETag");
  check(read.data && etag, "a book is read with its ETag");
  const updated = await api.PUT("/books/{book_id}", {
    params: { path: { book_id: first.id }, header: { "If-Match": etag } },
    body: { description: "Spice and sand." },
  });
  check(updated.data?.data.description === "Spice and sand.", "an update with If-Match is taken");
  const stale = await api.PUT("/books/{book_id}", {
    params: { path: { book_id: first.id }, header: { "If-Match": etag } },
    body: { description: "Too late." },
  });
  check(stale.response.status === 412 && stale.error?.message, "an update with a stale If-Match is refused (412)");

  const refreshed = await api.POST("/users/token/refresh", { body: { refresh_token: login.refresh_token ?? "" } });
  check(refreshed.data?.data.token, "the refresh token gives a new access token");
  accessToken = refreshed.data.data.token;

  // Two-factor needs a verified address: the sign-up mail's link.
  const proven = await api.POST("/users/email/verify", { body: { token: await mailedToken(email) } });
  check(proven.data?.data.email_verified, "the sign-up mail's link verifies the address");
  const enrolment = await api.POST("/users/mfa/totp", { body: { password } });
  check(enrolment.data, "the second factor is started");
  const verified = await api.POST("/users/mfa/totp/verify", { body: { code: totp(enrolment.data.data.secret) } });
  const recoveryCode = verified.data?.data.recovery_codes[0];
  check(recoveryCode, "the second factor is on, with recovery codes");

  const challenge = await logIn(email, password);
  if (!challenge.mfa_required) throw new Error("the second factor was not asked for");
  const second = await api.POST("/users/login/mfa", {
    body: { mfa_ticket: challenge.mfa_ticket, recovery_code: recoveryCode },
  });
  check(second.data?.data.token, "login with the second factor (a recovery code) gives tokens");
  accessToken = second.data.data.token;

  const out = await api.POST("/users/logout");
  check(out.response.status === 204, "log out");
  const after = await api.GET("/users/");
  check(after.response.status === 401, "the access token no longer works after logging out");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
