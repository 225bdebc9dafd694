// Runs a wasm32-wasip1 program (a test binary) under Node's WASI, as cargo's runner:
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --single-threaded-gc scripts/wasi_run.mjs" \
//       cargo test --target wasm32-wasip1   (scripts/test_wasm.sh says why one GC thread)
// The whole file system is visible (tests read fixtures by absolute path), EMBER_* and
// RUST_* variables pass through, and the exit code is the program's.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [program, ...args] = process.argv.slice(2);
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k.startsWith('EMBER_') || k.startsWith('RUST_')),
);
const wasi = new WASI({
  version: 'preview1',
  args: [program, ...args],
  env,
  preopens: { '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
