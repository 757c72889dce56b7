// remove.bg's npm client (remove.bg 1.3.0) against another server, the way docs/removebg.md shows:
// the library hard-codes its endpoint in a const, so the unirest module it sends through has its
// `post` wrapped before the client is loaded, turning remove.bg's address into ours. No file changes.
// Usage: node npm_client.cjs MODULE_DIR BASE KEY file|base64 INPUT OUTPUT [OPTIONS_JSON]
const fs = require("fs");
const path = require("path");

const [moduleDir, base, apiKey, mode, input, outputFile, extra] = process.argv.slice(2);
const modules = path.join(moduleDir, "node_modules");
const unirest = require(path.join(modules, "unirest"));
const post = unirest.post;
unirest.post = (url, ...rest) => post(url.replace("https://api.remove.bg", base), ...rest);
const client = require(path.join(modules, "remove.bg"));

const options = { apiKey, outputFile, ...(extra ? JSON.parse(extra) : {}) };
let call;
if (mode === "file") {
  options.path = input;
  call = client.removeBackgroundFromImageFile(options);
} else {
  options.base64img = fs.readFileSync(input).toString("base64");
  call = client.removeBackgroundFromImageBase64(options);
}
call.then(
  (result) => { delete result.base64img; console.log(JSON.stringify({ ok: true, result })); },
  (errors) => { console.log(JSON.stringify({ ok: false, errors })); process.exitCode = 1; },
);
