// The jose side of the JWKS verifier check (check.py starts it once and keeps it).
//
// Reads one JSON request a line on stdin and answers one JSON line on stdout, in order:
//
//   {"op": "open", "set": NAME, "jwks": URL, "cacheMaxAge": MS}   -> {"ok": true}
//       a createRemoteJWKSet(new URL(URL), {cacheMaxAge}) kept under NAME for the whole run
//       (cacheMaxAge omitted: jose's default); every later "verify" on NAME goes through
//       this one resolver and its cache, as a real service's would.
//   {"op": "verify", "set": NAME, "token": JWT, "alg": ALG}
//       -> {"ok": true, "payload": {...}, "header": {...}}
//       |  {"ok": false, "code": "ERR_...", "message": "..."}
//       jwtVerify(JWT, the resolver, {algorithms: [ALG]}).
//   {"op": "stats", "set": NAME}  -> {"ok": true, "fetches": N, "fresh": bool, "kids": [...]}
//       how many times the resolver fetched its JWKS (counted through jose's customFetch)
//       and the kids of the set it holds now.
//
// The cooldown after a fetch (jose's cooldownDuration, 30 s by default) is left as it is:
// with a cacheMaxAge below it, a kid missing from the cached set is an error
// (ERR_JWKS_NO_MATCHING_KEY), not a silent refetch.
import readline from 'node:readline';
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose';

const sets = new Map();

async function handle(request) {
  switch (request.op) {
    case 'open': {
      const entry = { fetches: 0, resolver: null };
      const options = {
        [customFetch]: (url, init) => {
          entry.fetches += 1;
          return fetch(url, init);
        },
      };
      if (request.cacheMaxAge !== undefined && request.cacheMaxAge !== null) {
        options.cacheMaxAge = request.cacheMaxAge;
      }
      entry.resolver = createRemoteJWKSet(new URL(request.jwks), options);
      sets.set(request.set, entry);
      return { ok: true };
    }
    case 'verify': {
      const entry = sets.get(request.set);
      if (!entry) return { ok: false, code: 'NO_SET', message: `no set ${request.set}` };
      try {
        const { payload, protectedHeader } = await jwtVerify(request.token, entry.resolver, {
          algorithms: [request.alg],
        });
        return { ok: true, payload, header: protectedHeader };
      } catch (err) {
        return { ok: false, code: err.code || err.name, message: String(err.message || err) };
      }
    }
    case 'stats': {
      const entry = sets.get(request.set);
      if (!entry) return { ok: false, code: 'NO_SET', message: `no set ${request.set}` };
      const cached = entry.resolver.jwks();
      return {
        ok: true,
        fetches: entry.fetches,
        fresh: entry.resolver.fresh,
        kids: cached ? cached.keys.map((key) => key.kid) : [],
      };
    }
    default:
      return { ok: false, code: 'BAD_OP', message: `unknown op ${request.op}` };
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await handle(JSON.parse(line));
  } catch (err) {
    answer = { ok: false, code: 'HELPER_ERROR', message: String(err && err.stack ? err.stack : err) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
