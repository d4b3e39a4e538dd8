// Package dispatch makes one attempt of an HTTP callback task: it builds
// the request, sends it, reads the reply and classifies the outcome as
// succeeded, failed for good, or worth a retry. It knows nothing of storage
// or scheduling: queue hands it a Request and stores the Outcome.
//
// # Request
//
// For GET and HEAD the task's arguments are merged into the URL's query:
// they replace parameters of the same name, and the URL's other parameters
// are kept as written. Other methods send the arguments as an
// application/x-www-form-urlencoded body with an exact Content-Length. A
// task with a JSON body sends it as application/json, and its arguments go
// into the query whatever the method. Keys are encoded in sorted order, and
// a list is a repeated key.
//
// Every request carries User-Agent, and the Standard Webhooks headers
// webhook-id (the task ID, the same on every retry: delivery is
// at-least-once, so receivers drop duplicates by it) and webhook-timestamp
// (the attempt's time in unix seconds). User headers cannot replace these,
// nor the headers of the transport (Host, Content-Length, Content-Type of a
// body, Accept-Encoding, hop-by-hop headers): those are dropped.
//
// # Signatures
//
// With signing secrets, webhook-signature carries "v1,<base64>" per
// secret, separated by spaces: the HMAC-SHA256 of "{id}.{timestamp}.{payload}"
// keyed by the base64-decoded part of "whsec_<base64>", as Standard Webhooks
// specifies. For POST, PUT, PATCH, DELETE and OPTIONS the payload is the
// exact body sent, empty or not. GET and HEAD never carry a body: their
// arguments are in the query, so they sign their request target as sent on
// the request line, the path and query, such as "/multiply?x=10&y=10". A
// receiver verifies those with any Standard Webhooks library by passing the
// raw request target (in Go, r.RequestURI) as the payload. A redirected GET
// or HEAD is signed again for its new target.
//
// # Reply
//
// A 2xx reply is read by the task's protocol. Under Celery, the default,
// {"status":"success","retval":V} succeeds with result V (any JSON, null
// included) and {"status":"failure","reason":R} fails with a remote error
// R, not retried: the endpoint has decided. Any other body fails with an
// invalid-response error that says what was wrong. Under Plain any 2xx
// succeeds, with the body as the result: as JSON if it is JSON, else as a
// JSON string. Content-Type is ignored either way. A HEAD reply has no body,
// so HEAD tasks want Plain.
//
// A reply of 408, 425, 429 or 5xx is retried, honouring Retry-After on 429
// and 503 (seconds or an HTTP date, capped). Any other status fails the
// task. Of a non-2xx body only the first KiB is read, as evidence: its size
// does not matter.
//
// # Limits
//
// An attempt has one deadline for everything: DNS, connect, TLS, the
// request, and the reply up to its last byte, so a server that drips its
// body cannot hold a worker. A 2xx body is read up to a limit counted after
// decompression; the reader never holds more than the limit, so a gzip bomb
// costs no more memory than an honest body.
//
// Redirects: GET and HEAD follow up to 10 hops. Other methods follow only
// 307 and 308, which keep the method and body; a 301, 302 or 303 would
// turn them into a GET, so it fails the task instead. No hop may go from
// https to http.
//
// # Connections
//
// Connections are kept alive and pooled per host:port, up to
// Options.MaxConnsPerHost each. At most 1024 idle http connections are kept
// across hosts, and as many https ones; past that the one idle longest is
// closed. Plain http goes through the dispatcher's own HTTP/1.1 client: an
// attempt takes a pooled connection, writes its request and reads the reply
// on its own goroutine, with no hand-over between goroutines, and puts the
// connection back once the reply was read to its end. A pooled connection
// is checked, without waiting, for a close by the server, or bytes it sent
// unasked, before it is reused; if the close comes only as the request is
// sent, a GET, HEAD, OPTIONS or TRACE (or any request of which nothing was
// written) is sent again on another connection, as net/http does, until it
// reaches the server or fails on a new connection. Any other request fails
// the attempt, which is retried. A reply the server sends before it has
// read the whole request, such as a 413 for a large body, stands even if
// the rest of the request could not be written. A reply with Connection:
// close, or whose body was not read to its end, closes its connection; a
// connection idle for 90 s is closed. https goes through net/http's
// Transport, which brings TLS and HTTP/2.
//
// # Guard
//
// The dispatcher resolves host names itself and checks every address with
// its Guard before dialling any, then checks the socket's address once more
// just before connect. So the guard judges the address actually dialled,
// on every redirect hop, and DNS rebinding cannot slip past it. Link-local
// and cloud metadata addresses are refused unless allowed; private and
// loopback ranges are refused with one option. A refused address fails the
// task; a DNS error is retried. Proxies are never used: they would dial
// past the guard.
package dispatch
