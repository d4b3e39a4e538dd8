package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/queue"
)

// Deadlines of requests to a server, so that one that accepts connections
// but does not answer (stopped with SIGSTOP, say) cannot hang a command.
const (
	// requestTimeout bounds every request but a long poll.
	requestTimeout = 30 * time.Second
	// pollMargin is how much longer than the long poll it asked for a wait
	// gives the server to answer.
	pollMargin = 10 * time.Second
	// bulkTimeout bounds a request that changes every task in a state
	// (retry, cancel, purge), which the server does in many commits.
	bulkTimeout = 10 * time.Minute
)

// serverClient is the client of a server on the data directory's socket.
// Each call gets requestTimeout to be answered (a long poll, its own time
// and pollMargin), and fails with errNoAnswer when it is not.
type serverClient struct {
	c      *httpapi.Client
	socket string
}

var _ taskAPI = (*serverClient)(nil)

// errNoAnswer reports a server that accepted a request but did not answer
// it in time.
var errNoAnswer = errors.New("server did not answer")

// outcomeUnknown reports whether err, the failure of a request of api,
// leaves unknown whether the request took effect: a server's client sent
// it but got no reply (the connection broke, the server did not answer in
// time, the command was interrupted), so the server may have done it all
// the same. An error reply is definite, and so is a connection that could
// not be made, and every error of a directly opened store.
func outcomeUnknown(api taskAPI, err error) bool {
	if _, ok := api.(*serverClient); !ok || err == nil {
		return false
	}
	var reply *httpapi.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &reply):
		return false
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return false // the request was never sent
	}
	return true
}

// failure describes err, the failure of a request made with ctx, for a
// message that goes on to say what became of the request: "interrupted"
// when ctx ended (Ctrl-C), "the server stopped answering (EOF)" when a
// server's connection failed, else err's own message.
func failure(ctx context.Context, err error) string {
	var reply *httpapi.Error
	var transport *url.Error
	switch {
	case ctx.Err() != nil:
		return "interrupted"
	case errors.Is(err, errNoAnswer), errors.As(err, &reply):
		return err.Error()
	case errors.As(err, &transport):
		// The request is known to the caller: say what happened to it.
		return fmt.Sprintf("the server stopped answering (%s)", transport.Err)
	}
	return err.Error()
}

// bounded runs call with a context that ends after d, and turns the
// failure it then causes into errNoAnswer, with a message naming the
// socket.
func bounded[T any](ctx context.Context, s *serverClient, d time.Duration,
	call func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := call(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return v, &causeError{
			msg:   fmt.Sprintf("server at %s did not answer within %s", s.socket, d),
			cause: errNoAnswer,
		}
	}
	return v, err
}

func (s *serverClient) Enqueue(ctx context.Context, spec queue.Spec) (*queue.Task, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) (*queue.Task, error) {
		return s.c.Enqueue(ctx, spec)
	})
}

func (s *serverClient) EnqueueMany(ctx context.Context, specs []queue.Spec) ([]*queue.Task, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) ([]*queue.Task, error) {
		return s.c.EnqueueMany(ctx, specs)
	})
}

func (s *serverClient) RetryAll(ctx context.Context, st queue.State) (int, error) {
	return bounded(ctx, s, bulkTimeout, func(ctx context.Context) (int, error) {
		return s.c.RetryAll(ctx, st)
	})
}

func (s *serverClient) CancelAll(ctx context.Context, st queue.State) (int, error) {
	return bounded(ctx, s, bulkTimeout, func(ctx context.Context) (int, error) {
		return s.c.CancelAll(ctx, st)
	})
}

func (s *serverClient) Purge(ctx context.Context, olderThan time.Duration,
	st queue.State) (int, error) {
	return bounded(ctx, s, bulkTimeout, func(ctx context.Context) (int, error) {
		return s.c.Purge(ctx, olderThan, st)
	})
}

func (s *serverClient) Get(ctx context.Context, id queue.ID) (*queue.Task, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) (*queue.Task, error) {
		return s.c.Get(ctx, id)
	})
}

func (s *serverClient) Attempts(ctx context.Context, id queue.ID) ([]queue.Attempt, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) ([]queue.Attempt, error) {
		return s.c.Attempts(ctx, id)
	})
}

func (s *serverClient) List(ctx context.Context, opts queue.ListOptions) ([]*queue.Task, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) ([]*queue.Task, error) {
		return s.c.List(ctx, opts)
	})
}

func (s *serverClient) Retry(ctx context.Context, id queue.ID) (*queue.Task, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) (*queue.Task, error) {
		return s.c.Retry(ctx, id)
	})
}

func (s *serverClient) Cancel(ctx context.Context, id queue.ID) (*queue.Task, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) (*queue.Task, error) {
		return s.c.Cancel(ctx, id)
	})
}

func (s *serverClient) Stats(ctx context.Context) (*queue.Stats, error) {
	return bounded(ctx, s, requestTimeout, func(ctx context.Context) (*queue.Stats, error) {
		return s.c.Stats(ctx)
	})
}

// Poll makes one long poll of wait, which the server must answer within
// wait and pollMargin.
func (s *serverClient) Poll(ctx context.Context, id queue.ID,
	wait time.Duration) (*queue.Task, error) {
	return bounded(ctx, s, wait+pollMargin, func(ctx context.Context) (*queue.Task, error) {
		return s.c.Poll(ctx, id, wait)
	})
}

// Close releases the client's idle connections.
// Backup has no deadline: a copy takes as long as the store is large. It
// ends with the command's context (Ctrl-C).
func (s *serverClient) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return s.c.Backup(ctx, w)
}

func (s *serverClient) Close() error { return s.c.Close() }
