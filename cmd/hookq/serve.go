package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/cmd/hookq/internal/metrics"
	"github.com/hookq/hookq/dispatch"
	"github.com/hookq/hookq/queue"
)

// Limits of the API server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute // whole request; long polls are not cut by it
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	maxConns          = 1024 // open connections per listener; more wait in the backlog
	shutdownTimeout   = 5 * time.Second
	serveLockTimeout  = 2 * time.Second
)

// Log attribute keys of the server.
const (
	keyListen  = "listen"
	keySocket  = "socket"
	keyVersion = "version"
	keyError   = "error"
	keyFile    = "file"
	keyMode    = "mode"
	keyRoutes  = "routes"
)

// serveFlags are the flags of "hookq serve".
type serveFlags struct {
	listen      string
	workers     int
	perHost     int
	perHostRate float64
	maxAttempts int
	maxAge      time.Duration
	retention   time.Duration
	allow       []string
	maxBody     int64
	redirects   int
	timeout     time.Duration
	backoffBase time.Duration
	backoffCap  time.Duration
	grace       time.Duration
	denyPrivate bool
	caFiles     []string
	tls         *tls.Config // from caFiles, loaded by check
	secrets     []string
	logFormat   string
	logLevel    string
	tokenFile   string
	routesFile  string
	route       []string
}

// newServeCmd returns "hookq serve".
func newServeCmd(a *app) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the queue: workers, the HTTP API and the control socket",
		Long: `Serve runs the queue stored in the data directory: it dispatches tasks
with its workers and serves the HTTP API on --listen and on the unix socket
DATA/hookq.sock, through which the other hookq commands reach it.

Only one server can run on a data directory. SIGINT or SIGTERM stops it:
listeners close, attempts in flight get --grace to finish (those cut off
run again on the next start), and it exits 0.

Numeric flags left at 0 take the queue's defaults: 128 workers, no per-host
limit, 10 attempts, a 15s timeout, backoff from 1s up to 1h, 10s grace.

With --token-file (or $HOOKQ_TOKEN), every request on the TCP listener but
GET /healthz must carry "Authorization: Bearer <token>"; the unix socket,
owner-only, needs none, so the other hookq commands work as before.
GET /metrics serves Prometheus metrics. --routes and --route name the tasks
that GET or POST /apply/{name} enqueues, as Celery's HTTP gateway did.`,
		Example: `  hookq serve
  hookq serve --data /var/lib/hookq --listen 127.0.0.1:7700 --workers 32
  hookq serve --deny-private --allow 10.1.0.0/16 --per-host 8 --per-host-rate 50
  HOOKQ_SIGNING_SECRETS='whsec_<base64 key> whsec_<older key>' hookq serve
  hookq serve --listen 127.0.0.1:0 --log-format json   # any free port; see the log
  hookq serve --listen 0.0.0.0:7700 --token-file /etc/hookq/token
  hookq serve --route multiply=GET:http://127.0.0.1:8000/multiply
  curl '127.0.0.1:7700/apply/multiply?x=6&y=7'      # {"ok":"true","task_id":"..."}`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7700",
		`TCP address of the HTTP API; port 0 picks a free one, "" serves the socket only`)
	fl.IntVar(&f.workers, "workers", 0, "concurrent attempts, up to 10000 (0: 128)")
	fl.IntVar(&f.perHost, "per-host", 0,
		"attempts in flight to one host:port, up to --workers (0: no limit)")
	fl.Float64Var(&f.perHostRate, "per-host-rate", 0,
		"attempts started per second to one host:port, in bursts of as many (0: no limit)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0,
		"attempts of a task that sets none, up to 1000 (0: 10)")
	fl.DurationVar(&f.maxAge, "max-age", 0,
		"no retry starts this long after a task's first run time (0: 24h)")
	fl.Int64Var(&f.maxBody, "max-body-bytes", 0,
		"largest reply body read, after decompression; more fails the attempt (0: 1 MiB)")
	fl.IntVar(&f.redirects, "max-redirects", 0,
		"redirects a GET or HEAD follows; -1 follows none (0: 10)")
	fl.DurationVar(&f.retention, "retention", 0,
		"how long finished tasks are kept before a background sweep deletes them; -1s keeps them forever (0: 168h)")
	fl.StringArrayVar(&f.allow, "allow", nil,
		"CIDR the dispatch guard allows even if it would refuse it; repeatable")
	fl.DurationVar(&f.timeout, "timeout", 0,
		"deadline of one attempt of a task that sets none, up to 1h (0: 15s)")
	fl.DurationVar(&f.backoffBase, "backoff-base", 0,
		"delay before the first retry; doubles each time (0: 1s)")
	fl.DurationVar(&f.backoffCap, "backoff-cap", 0,
		"longest delay between attempts, at least --backoff-base (0: 1h)")
	fl.DurationVar(&f.grace, "grace", 0, "time attempts in flight get to finish on shutdown (0: 10s)")
	fl.StringArrayVar(&f.caFiles, "ca-file", nil,
		"PEM file of CA certificates to trust for https endpoints, besides the system's; repeatable")
	fl.BoolVar(&f.denyPrivate, "deny-private", false,
		"refuse to call private and loopback addresses (metadata and link-local are always refused)")
	fl.StringArrayVar(&f.secrets, "signing-secret", nil,
		"sign requests with this Standard Webhooks secret (whsec_...); repeat to rotate;\n"+
			"$HOOKQ_SIGNING_SECRETS (space-separated) adds more and keeps them out of ps")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.tokenFile, "token-file", "",
		"require the bearer token in FILE on the TCP listener (or set $HOOKQ_TOKEN);\n"+
			"the unix socket and GET /healthz need none")
	fl.StringVar(&f.routesFile, "routes", "",
		`Celery gateway routes for /apply/{name}: a JSON file such as
{"multiply": {"url": "http://127.0.0.1:8000/multiply", "method": "GET"}}`)
	fl.StringArrayVar(&f.route, "route", nil,
		"a Celery gateway route, name=METHOD:URL, or name=URL for a GET; repeatable")
	return cmd
}

// Limits of the serve flags, and the default they are checked against:
// the queue's.
const (
	maxWorkers     = queue.MaxWorkers
	defaultWorkers = queue.DefaultWorkers
)

// check validates the flags that pflag cannot.
func (f *serveFlags) check() error {
	var err error
	if f.tls, err = caConfig(f.caFiles); err != nil {
		return err
	}
	for name, v := range map[string]int{"workers": f.workers, "per-host": f.perHost,
		"max-attempts": f.maxAttempts} {
		if v < 0 {
			return usagef("--%s %d is negative", name, v)
		}
	}
	workers := cmp.Or(f.workers, defaultWorkers)
	switch {
	case f.workers > maxWorkers:
		return usagef("--workers %d is over the limit of %d", f.workers, maxWorkers)
	case f.perHost > workers:
		return usagef("--per-host %d is over the %d workers (--workers)", f.perHost, workers)
	case f.maxAttempts > maxTaskAttempts:
		return usagef("--max-attempts %d is over the limit of %d", f.maxAttempts, maxTaskAttempts)
	case f.timeout > maxTaskTimeout:
		return usagef("--timeout %s is over the limit of %s", f.timeout, maxTaskTimeout)
	case f.backoffBase > 0 && f.backoffCap > 0 && f.backoffBase > f.backoffCap:
		return usagef("--backoff-base %s is over --backoff-cap %s", f.backoffBase, f.backoffCap)
	}
	if f.maxBody < 0 {
		return usagef("--max-body-bytes %d is negative", f.maxBody)
	}
	if f.perHostRate < 0 {
		return usagef("--per-host-rate %g is negative", f.perHostRate)
	}
	for name, v := range map[string]time.Duration{"timeout": f.timeout, "max-age": f.maxAge,
		"backoff-base": f.backoffBase, "backoff-cap": f.backoffCap, "grace": f.grace} {
		if v < 0 {
			return usagef("--%s %s is negative", name, v)
		}
	}
	f.secrets = append(f.secrets, strings.Fields(os.Getenv(envSigningSecrets))...)
	for i, s := range f.secrets {
		if _, err := dispatch.ParseSecret(s); err != nil {
			return usagef("signing secret #%d: %v", i+1, err)
		}
	}
	for _, c := range f.allow {
		if _, err := netip.ParsePrefix(c); err != nil {
			return usagef("--allow %q: not a CIDR such as 10.0.0.0/8: %v", c, err)
		}
	}
	return nil
}

// envSigningSecrets names the variable with more signing secrets.
const envSigningSecrets = "HOOKQ_SIGNING_SECRETS"

// allowed returns the --allow prefixes, already checked by check.
func (f *serveFlags) allowed() []netip.Prefix {
	var out []netip.Prefix
	for _, c := range f.allow {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// serve runs the server until ctx is done or a listener fails.
//
// It takes its listeners before it opens the queue, whose workers start
// dispatching at once: a server that cannot serve must fail before it has
// sent anything.
func (a *app) serve(ctx context.Context, cmd *cobra.Command, f *serveFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	token, err := f.token(log)
	if err != nil {
		return err
	}
	routes, err := f.routes()
	if err != nil {
		return err
	}
	dir := a.dataDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := a.probeStore(ctx); err != nil {
		return err
	}

	// The TCP listener first: a busy port or a bad address fails here.
	var tcp net.Listener
	if f.listen != "" {
		if tcp, err = net.Listen("tcp", f.listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	closeTCP := func() {
		if tcp != nil {
			tcp.Close()
		}
	}

	// Then the socket. One that answers is a running server's: leave it.
	// One that does not was left by a server that died, and is replaced.
	if socketAnswers(a.socketPath()) {
		closeTCP()
		return a.heldError(errors.New("socket in use"))
	}
	sock, stale, err := listenSocket(a.socketPath())
	if err != nil {
		closeTCP()
		return err
	}

	// Only now the queue, whose lock proves no other server runs here. If
	// another holds it (a server starting at the same moment, say), the
	// socket file goes too, unless that server has put its own in place.
	m := metrics.New(version, log)
	opts := f.options(log)
	opts.OnEnqueue, opts.OnAttempt = m.OnEnqueue, m.OnAttempt
	q, err := queue.Open(a.storePath(), opts)
	if err != nil {
		closeTCP()
		sock.Close()
		if rerr := sock.remove(); rerr != nil {
			log.Warn("remove socket", slog.Any(keyError, rerr))
		}
		if errors.Is(err, queue.ErrLocked) {
			return a.heldError(err)
		}
		return err
	}

	// A server that started at the same moment and lost the lock to us
	// may have replaced our socket file with its own meanwhile: with the
	// lock held, ours can take the place back.
	if !sock.inPlace() {
		sock.Close()
		if sock, _, err = listenSocket(a.socketPath()); err != nil {
			closeTCP()
			q.Close()
			return err
		}
	}
	if stale {
		log.Info("replaced the stale socket of a server that did not stop cleanly",
			slog.String(keySocket, sock.path))
	}

	m.Watch(q)
	var handler http.Handler = httpapi.NewHandler(q, log,
		httpapi.WithMetrics(m.Handler()), httpapi.WithRoutes(routes))
	if token != "" {
		handler = httpapi.RequireToken(handler, token, log)
		log.Info("the TCP listener requires a bearer token")
	}
	if len(routes) > 0 {
		log.Info("celery gateway", slog.Any(keyRoutes, slices.Sorted(maps.Keys(routes))))
	}
	err = runServer(ctx, handler, log, tcp, sock)
	if rerr := sock.remove(); rerr != nil {
		log.Warn("remove socket", slog.Any(keyError, rerr))
	}
	if cerr := q.Close(); cerr != nil && err == nil {
		err = cerr
	}
	log.Info("stopped")
	return err
}

// heldError is the error of a serve that found another process serving
// the data directory, or holding its store.
func (a *app) heldError(cause error) error {
	return &causeError{
		msg: fmt.Sprintf("another hookq process holds %s (is \"hookq serve\" already running on %s?)",
			a.storePath(), a.dataDir()),
		cause: cause,
	}
}

// options returns the queue's options for the flags.
func (f *serveFlags) options(log *slog.Logger) *queue.Options {
	return &queue.Options{
		Workers:     f.workers,
		PerHost:     f.perHost,
		PerHostRate: f.perHostRate,
		MaxAttempts: f.maxAttempts,
		MaxAge:      f.maxAge,
		Retention:   f.retention,
		Timeout:     f.timeout,
		BackoffBase: f.backoffBase,
		BackoffCap:  f.backoffCap,
		Grace:       f.grace,
		Dispatch: dispatch.Options{
			Guard:          dispatch.Guard{DenyPrivate: f.denyPrivate, Allow: f.allowed()},
			SigningSecrets: f.secrets,
			MaxBodyBytes:   f.maxBody,
			MaxRedirects:   f.redirects,
			UserAgent:      "hookq/" + version,
			TLSConfig:      f.tls,
		},
		Logger:      log,
		LockTimeout: serveLockTimeout,
	}
}

// runServer serves the API handler on the listeners until ctx is done or
// one of them fails, then shuts the HTTP server down. tcp may be nil.
// Requests on sock are httpapi.Trusted: they need no token.
func runServer(ctx context.Context, handler http.Handler, log *slog.Logger, tcp net.Listener,
	sock *socketListener) error {
	// Requests derive their context from base, which is cancelled at
	// shutdown so that long polls end instead of holding it up.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	// Each listener takes a bounded number of connections at once.
	trusted := limitConns(sock, maxConns)
	var public net.Listener
	if tcp != nil {
		public = limitConns(tcp, maxConns)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext: func(ln net.Listener) context.Context {
			if ln == net.Listener(trusted) {
				return httpapi.Trusted(base)
			}
			return base
		},
	}

	g, gctx := errgroup.WithContext(ctx)
	serveOn := func(ln net.Listener) {
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	listen := ""
	if tcp != nil {
		listen = tcp.Addr().String()
		serveOn(public)
	}
	serveOn(trusted)
	log.Info("serving", slog.String(keyListen, listen), slog.String(keySocket, sock.path),
		slog.String(keyVersion, version))

	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		cancelBase()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("http shutdown", slog.Any(keyError, err))
			srv.Close()
		}
		return nil
	})
	return g.Wait()
}
