// An admin API in Express 5, as many are written: body-parser reads JSON
// and forms (inflating gzip, deflate and br bodies, decoding UTF-16 and
// UTF-32 charsets, dropping byte order marks, V8 parsing JSON of any
// depth), method-override lets a call stand for another method by header,
// query or form field, and routes match in any case. Node 20's zlib has no
// zstd, which body-parser uses on Node 22: a small middleware decodes zstd
// bodies with fzstd first, as body-parser would.
//
// Every mutation it executes is logged with the headers a backend trusts,
// at GET /__log; POST /__reset restores the seed state.
import express from 'express';
import methodOverride from 'method-override';
import { decompress } from 'fzstd';

const seed = () => ({
  devices: { 1: { id: '1', wiped: false }, 2: { id: '2', wiped: false } },
  roles: { 1: { id: '1', name: 'helpdesk' }, 2: { id: '2', name: 'auditors' } },
  apps: { 1: { id: '1', version: '1.0' }, 2: { id: '2', version: '1.0' } },
});
let state = seed();
let log = [];

const app = express();

app.use((req, res, next) => {
  if ((req.headers['content-encoding'] || '').toLowerCase() !== 'zstd') return next();
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      const body = Buffer.from(decompress(Buffer.concat(chunks))).toString('utf8');
      req.body = (req.headers['content-type'] || '').includes('json') ? JSON.parse(body) : Object.fromEntries(new URLSearchParams(body));
      next();
    } catch (err) {
      res.status(400).json({ error: String(err) });
    }
  });
});
app.use(express.json({ type: ['application/json', '+json'], limit: '10mb' }));
app.use(express.urlencoded({ extended: false }));
// "post-only" honours overrides on POST alone, as Rack, Symfony, Spring
// and method-override's default do; otherwise on any method.
const anyMethod = process.argv[3] === 'post-only' ? { methods: ['POST'] } : { methods: null };
app.use(methodOverride('X-HTTP-Method-Override', anyMethod));
app.use(methodOverride('X-HTTP-Method', anyMethod));
app.use(methodOverride('X-Method-Override', anyMethod));
app.use(methodOverride('_method', anyMethod));
app.use(methodOverride((req) => req.body && typeof req.body === 'object' ? req.body._method : undefined, anyMethod));

app.get('/__log', (req, res) => res.json({ state, log }));
app.post('/__reset', (req, res) => {
  state = seed();
  log = [];
  res.json({ ok: true });
});

// done records an executed mutation and answers with the object.
const done = (req, res, status, obj) => {
  log.push({
    method: req.method,
    url: req.originalUrl,
    params: req.params,
    approved_by: req.headers['approval-approved-by'] ?? null,
    request_id: req.headers['approval-request-id'] ?? null,
    idempotency_key: req.headers['idempotency-key'] ?? null,
    attestation: req.headers['approval-attestation'] ?? null,
  });
  res.status(status).json(obj ?? {});
};

for (const kind of ['devices', 'roles', 'apps']) {
  // An update takes the body's plain fields and leaves nested ones (a
  // real API would validate them against its schema).
  const update = (req, res) => {
    const obj = state[kind][req.params.id] ?? (state[kind][req.params.id] = { id: req.params.id });
    for (const [k, v] of Object.entries(req.body ?? {})) {
      if (k !== 'id' && k !== '_method' && (v === null || typeof v !== 'object')) obj[k] = v;
    }
    done(req, res, 200, obj);
  };
  app.get(`/${kind}/:id`, (req, res) => res.json(state[kind][req.params.id] ?? null));
  app.put(`/${kind}/:id`, update);
  app.patch(`/${kind}/:id`, update);
  app.post(`/${kind}/:id`, update);
  // A field of an object: PUT /apps/2/version {"value": "2.0"}.
  app.put(`/${kind}/:id/:field`, (req, res) => {
    const obj = state[kind][req.params.id] ?? (state[kind][req.params.id] = { id: req.params.id });
    obj[req.params.field] = req.body?.value ?? req.body;
    done(req, res, 200, obj);
  });
  app.delete(`/${kind}/:id`, (req, res) => {
    const obj = state[kind][req.params.id];
    delete state[kind][req.params.id];
    done(req, res, 200, { deleted: obj ?? null });
  });
}

app.use((err, req, res, next) => res.status(err.status || 500).json({ error: err.message }));

const server = app.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`);
});
