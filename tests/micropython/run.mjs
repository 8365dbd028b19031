// Run a script under MicroPython's WebAssembly port (npm @micropython/micropython-webassembly-pyscript):
//   node run.mjs MICROPYTHON_MJS HEAP_BYTES SCRIPT.py[,SCRIPT2.py ...] [HOST_DIR:GUEST_DIR ...]
// Every file of each HOST_DIR is copied into the port's in-memory filesystem at GUEST_DIR (with its
// sub-folders); the scripts run one after the other in one __main__ (globals carry over), each
// followed by gc.collect() at the top level — the only place this port's GC can see every root, as
// it cannot scan the WebAssembly stack —; output goes to stdout; exit 1 on a Python error.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [mjs, heap, script, ...dirs] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(mjs).href);
const mp = await loadMicroPython({ heapsize: parseInt(heap, 10), stdout: (s) => process.stdout.write(s + "\n"),
                                   stderr: (s) => process.stderr.write(s + "\n") });
function copy(host, guest) {
  try { mp.FS.mkdir(guest); } catch (e) { /* exists */ }
  for (const name of fs.readdirSync(host)) {
    const from = path.join(host, name), to = guest + "/" + name;
    if (fs.statSync(from).isDirectory()) copy(from, to);
    else mp.FS.writeFile(to, fs.readFileSync(from));
  }
}
for (const pair of dirs) {
  const cut = pair.lastIndexOf(":");
  copy(pair.slice(0, cut), pair.slice(cut + 1));
}
try {
  for (const one of script.split(",")) {
    mp.runPython(fs.readFileSync(one, "utf8"));
    mp.runPython("import gc\ngc.collect()");
  }
} catch (err) {
  process.stderr.write(String(err.message || err) + "\n");
  process.exit(1);
}
