// One short session of Line's published client (npm line-socket, client-node) against the
// URL given as the first argument: handshake, a request, dispose.
// Prints one JSON line with what it saw, and exits non-zero on any failure.
// Run by tests/mount.rs (roomwire mounted on an axum app).
'use strict';

const Client = require('line-socket/dist/client-node.js');

const url = process.argv[2];
const timer = setTimeout(() => {
  console.error('timed out');
  process.exit(2);
}, 10000);

const client = new Client(url, { handshake: { payload: { name: 'line' } }, reconnect: false });
client.once(Client.Event.CONNECTED, async (payload) => {
  try {
    const sum = await client.send('add', [2, 3]);
    const id = client.id;
    await client.dispose();
    clearTimeout(timer);
    console.log(JSON.stringify({ id, payload, sum }));
  } catch (err) {
    console.error('failed:', err);
    process.exit(1);
  }
});
client.once(Client.Event.CONNECTING_ERROR, (err) => {
  console.error('could not connect:', err);
  process.exit(1);
});
client.connect();
