// remove.bg's npm client (remove.bg 1.3.0) against another server: the library hard-codes its
// endpoint in a const, so its module is loaded with that one string replaced, and nothing else.
// Usage: node npm_client.cjs MODULE_DIR ENDPOINT KEY file|base64 INPUT OUTPUT [OPTIONS_JSON]
const fs = require("fs");
const Module = require("module");
const path = require("path");

const [moduleDir, endpoint, apiKey, mode, input, outputFile, extra] = process.argv.slice(2);
const file = path.join(moduleDir, "node_modules", "remove.bg", "dist", "index.js");
const source = fs.readFileSync(file, "utf8");
const original = "https://api.remove.bg/v1.0/removebg";
if (!source.includes(original)) throw new Error("the client no longer names its endpoint as expected");
const client = new Module(file, module);
client.filename = file;
client.paths = Module._nodeModulePaths(path.dirname(file));
client._compile(source.replace(original, endpoint), file);

const options = { apiKey, outputFile, ...(extra ? JSON.parse(extra) : {}) };
let call;
if (mode === "file") {
  options.path = input;
  call = client.exports.removeBackgroundFromImageFile(options);
} else {
  options.base64img = fs.readFileSync(input).toString("base64");
  call = client.exports.removeBackgroundFromImageBase64(options);
}
call.then(
  (result) => { delete result.base64img; console.log(JSON.stringify({ ok: true, result })); },
  (errors) => { console.log(JSON.stringify({ ok: false, errors })); process.exitCode = 1; },
);
