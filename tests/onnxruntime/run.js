// Runs an ONNX model in ONNX Runtime: node run.js MODEL INPUT N C H W OUTPUT
// INPUT holds N*C*H*W float32 values (little-endian); OUTPUT gets the model's first output, as
// float32, and its dimensions go to stdout. Exits 1 with ONNX Runtime's message if it refuses the model.
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, input, n, c, h, w, output] = process.argv.slice(2);
  const dims = [n, c, h, w].map(Number);
  const bytes = fs.readFileSync(input);
  const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', values, dims) };
  const result = (await session.run(feeds))[session.outputNames[0]];
  fs.writeFileSync(output, Buffer.from(result.data.buffer, result.data.byteOffset, result.data.byteLength));
  console.log(result.dims.join(' '));
}

main().catch((e) => {
  console.error(`onnxruntime: ${e.message}`);
  process.exit(1);
});
