'use strict';
/*
 * Artillery engine for the llm-stream protocol: each virtual user opens one connection with the
 * project's own client (protocol/, compiled to dist/protocol) and runs its flow of `generate`,
 * `ping` and `think` steps. Artillery finds it as `artillery-engine-llm` through NODE_PATH.
 *
 * Metrics: llm.requests, llm.end.<reason>, llm.err.<code>, llm.tokens (counters);
 * llm.ttft_ms, llm.stream_tokens_per_s, llm.cancel_to_end_ms, llm.ping_ms (histograms).
 */
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const WebSocket = require('ws');

let protocolModule;
function loadProtocol() {
  protocolModule ??= import(pathToFileURL(path.resolve(__dirname, '../../../../dist/protocol/index.js')).href);
  return protocolModule;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class LlmEngine {
  constructor(script) {
    this.config = script.config;
  }

  createScenario(scenarioSpec, ee) {
    const config = this.config;
    return (context, callback) => {
      ee.emit('started');
      runFlow(config, scenarioSpec.flow, ee).then(
        () => callback(null, context),
        (error) => {
          ee.emit('error', error.code || error.message);
          callback(error, context);
        },
      );
    };
  }
}

async function runFlow(config, flow, ee) {
  const { connect } = await loadProtocol();
  const options = (config.engines && config.engines.llm) || {};
  const client = await connect(`${config.target.replace(/\/$/, '')}/v1/stream`, {
    WebSocket,
    apiKey: options.apiKey || process.env.LLM_API_KEY || undefined,
  });
  try {
    for (const step of flow) {
      if (step.think !== undefined) await sleep(Number(step.think) * 1000);
      else if (step.generate) await generate(client, step.generate, ee);
      else if (step.ping !== undefined) ee.emit('histogram', 'llm.ping_ms', await client.ping());
    }
  } finally {
    client.close();
  }
}

async function generate(client, params, ee) {
  const { cancelAfterPieces, ...request } = params;
  const started = performance.now();
  let first = 0;
  let last = 0;
  let pieces = 0;
  let cancelledAt = 0;
  ee.emit('counter', 'llm.requests', 1);
  const stream = client.generate(request);
  try {
    for await (const _piece of stream) {
      last = performance.now();
      if (first === 0) {
        first = last;
        ee.emit('histogram', 'llm.ttft_ms', first - started);
      }
      if (++pieces === cancelAfterPieces) {
        cancelledAt = performance.now();
        stream.cancel();
      }
    }
    const end = await stream.end;
    ee.emit('counter', `llm.end.${end.reason}`, 1);
    ee.emit('counter', 'llm.tokens', end.usage.completionTokens);
    if (cancelledAt > 0) ee.emit('histogram', 'llm.cancel_to_end_ms', performance.now() - cancelledAt);
    if (end.usage.completionTokens > 1 && last > first) ee.emit('histogram', 'llm.stream_tokens_per_s', ((end.usage.completionTokens - 1) * 1000) / (last - first));
  } catch (error) {
    ee.emit('counter', `llm.err.${error.code || 'unknown'}`, 1);
  }
}

module.exports = LlmEngine;
