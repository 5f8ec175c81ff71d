// Line's published client (npm line-socket, client-node) against a roomwire server.
//
// Run by tests/line_client.rs, which starts the server and passes its URL as the first
// argument. When this script prints "RESTART", the Rust side closes the server and starts a
// new one on the same address. Ends with "N passed, N failed" and exits non-zero on failure.
'use strict';

const assert = require('assert');
const Client = require('line-socket/dist/client-node.js');

const url = process.argv[2];
const results = [];
const LIMIT_MS = 10000;

// Line's bundle replaces the global Promise with a polyfill that has no `finally`.
async function within(promise, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), LIMIT_MS);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

function once(client, event) {
  return within(new Promise((resolve) => client.once(event, resolve)), `event ${event}`);
}

async function connected(name, options = {}) {
  const client = new Client(url, Object.assign({
    handshake: { payload: { name } },
    reconnect: false,
  }, options));
  const handshaked = once(client, Client.Event.CONNECTED);
  client.connect();
  const payload = await handshaked;
  return { client, payload };
}

async function dispose(client) {
  await within(client.dispose(), 'dispose');
}

async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, got a resolution');
}

const tests = [
  ['handshake accepted: the id and payload arrive', async () => {
    const { client, payload } = await connected('ann');
    assert.strictEqual(client.id, 'ann');
    assert.deepStrictEqual(payload, { greeting: 'hello, ann' });
    await dispose(client);
  }],

  ['handshake rejected: the error arrives, then close 4203', async () => {
    const client = new Client(url, { handshake: { payload: { name: 'reject-me' } }, reconnect: false });
    const failed = once(client, Client.Event.CONNECTING_ERROR);
    const closed = once(client, Client.Event.DISCONNECTED);
    client.connect();
    const err = await failed;
    assert.strictEqual(err.code, 'cHandshakeRejected');
    assert.strictEqual(err.payload.name, 'Unauthorized');
    assert.strictEqual(err.payload.message, 'bad name');
    const event = await closed;
    assert.strictEqual(event.code, 4203);
    await dispose(client);
  }],

  ['client to server: resolve', async () => {
    const { client } = await connected('c2s-resolve');
    assert.strictEqual(await within(client.send('add', [2, 3]), 'add'), 5);
    await dispose(client);
  }],

  ['client to server: reject carries the error object', async () => {
    const { client } = await connected('c2s-reject');
    const err = await within(rejection(client.send('fail')), 'fail');
    assert.strictEqual(err.code, 'cMessageRejected');
    assert.strictEqual(err.payload.name, 'Nope');
    assert.strictEqual(err.payload.message, 'always fails');
    const none = await within(rejection(client.send('nothing')), 'nothing');
    assert.strictEqual(none.payload.name, 'NoHandler');
    await dispose(client);
  }],

  ['client to server: timeout', async () => {
    const { client } = await connected('c2s-timeout');
    const err = await within(rejection(client.send('slow', null, 200)), 'slow');
    assert.strictEqual(err.code, 'cMessageTimeout');
    // The connection is still fine.
    assert.strictEqual(await within(client.send('add', [1, 1]), 'add'), 2);
    await dispose(client);
  }],

  ['server to client: resolve', async () => {
    const { client } = await connected('s2c-resolve');
    client.on('double', (message) => message.resolve(message.payload * 2));
    const outcome = await within(client.send('ask', { name: 'double', payload: 21 }), 'ask');
    assert.deepStrictEqual(outcome, { ok: 42 });
    await dispose(client);
  }],

  ['server to client: reject', async () => {
    const { client } = await connected('s2c-reject');
    client.on('refuse', (message) => message.reject({ name: 'No', message: 'refused' }));
    const outcome = await within(client.send('ask', { name: 'refuse', payload: null }), 'ask');
    assert.deepStrictEqual(outcome, { err: { name: 'No', message: 'refused' } });
    await dispose(client);
  }],

  ['server to client: timeout', async () => {
    const { client } = await connected('s2c-timeout');
    client.on('ignore', () => {});
    const outcome = await within(client.send('ask', { name: 'ignore', payload: null, timeout_ms: 200 }), 'ask');
    assert.strictEqual(outcome.err.name, 'MessageTimeout');
    await dispose(client);
  }],

  ['fire-and-forget: client to server', async () => {
    const { client } = await connected('f2s');
    await client.sendWithoutResponse('note', 'hello');
    await client.sendWithoutResponse('note', 'again');
    assert.deepStrictEqual(await within(client.send('notes'), 'notes'), ['hello', 'again']);
    await dispose(client);
  }],

  ['fire-and-forget: server to client', async () => {
    const { client } = await connected('f2c');
    const told = within(new Promise((resolve) => client.on('told', resolve)), 'told');
    await within(client.send('tell', { name: 'told', payload: { x: 1 } }), 'tell');
    const message = await told;
    assert.deepStrictEqual(message.payload, { x: 1 });
    assert.strictEqual(message.id, undefined);
    await dispose(client);
  }],

  ['ping both ways', async () => {
    const { client } = await connected('pinger');
    assert.strictEqual(await within(client.ping(), 'client ping'), 'pong');
    assert.deepStrictEqual(await within(client.send('ping_me'), 'server ping'), { ok: true });
    await dispose(client);
  }],

  ['room broadcasts reach members, awaited broadcasts collect their answers', async () => {
    const a = (await connected('room-a')).client;
    const b = (await connected('room-b')).client;
    const news = (client) => within(new Promise((resolve) => client.on('room.news', resolve)), 'room.news');
    const aNews = news(a);
    const bNews = news(b);
    await within(a.send('join', 'js-room'), 'join a');
    await within(b.send('join', 'js-room'), 'join b');
    const reached = await within(a.send('room_emit', { room: 'js-room', name: 'room.news', payload: 'hi all' }), 'emit');
    assert.strictEqual(reached, 2);
    assert.strictEqual((await aNews).payload, 'hi all');
    assert.strictEqual((await bNews).payload, 'hi all');
    a.on('room.q', (message) => message.resolve(`a says ${message.payload}`));
    b.on('room.q', (message) => message.reject({ name: 'Busy', message: 'b is busy' }));
    const outcomes = await within(a.send('room_ask', { room: 'js-room', name: 'room.q', payload: 'hello' }), 'ask');
    assert.deepStrictEqual(outcomes, [
      ['room-a', { ok: 'a says hello' }],
      ['room-b', { err: { name: 'Busy', message: 'b is busy' } }],
    ]);
    await dispose(a);
    await dispose(b);
  }],

  ['reconnects after the server restarts', async () => {
    const { client } = await connected('phoenix', {
      reconnect: true,
      reconnectOptions: { initialDelay: 50, multiply: 1.5, maxDelay: 500, randomness: 0 },
    });
    const lost = once(client, Client.Event.DISCONNECTED);
    console.log('RESTART');
    const event = await lost;
    assert.strictEqual(event.code, 1001);
    await once(client, Client.Event.CONNECTED);
    assert.strictEqual(client.id, 'phoenix');
    assert.strictEqual(await within(client.send('add', [40, 2]), 'add after reconnect'), 42);
    await dispose(client);
  }],
];

(async () => {
  let passed = 0;
  let failed = 0;
  for (const [name, run] of tests) {
    try {
      await run();
      passed += 1;
      console.log(`ok - ${name}`);
    } catch (err) {
      failed += 1;
      console.log(`not ok - ${name}: ${err && err.stack || err}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
})();
