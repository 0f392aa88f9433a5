// Jest's node environment gives each test file its own realm, so typed arrays created in a test
// are not `instanceof` the host's Float32Array. onnxruntime-node checks exactly that ("A float32
// tensor's data must be type of Float32Array"), so the host's constructors are passed through.
const { TestEnvironment } = require('jest-environment-node');

const SHARED_CONSTRUCTORS = [
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
  'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
];

class ZerolmNodeEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED_CONSTRUCTORS) this.global[name] = globalThis[name];
  }
}

module.exports = ZerolmNodeEnvironment;
