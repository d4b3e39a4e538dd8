package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// addFlags are the flags of "hookq add".
type addFlags struct {
	method      string
	json        string
	headers     []string
	in          time.Duration
	at          string
	maxAttempts int
	timeout     time.Duration
	key         string
	protocol    string
	wait        bool
	waitTimeout time.Duration
	from        string
	quiet       bool
}

// newAddCmd returns "hookq add".
func newAddCmd(a *app) *cobra.Command {
	var f addFlags
	cmd := &cobra.Command{
		Use:   "add {URL [key=value ...] | --from FILE}",
		Short: "Enqueue HTTP callback tasks and print their IDs",
		Long: `Add enqueues a call of URL with the given arguments and prints the new
task's ID. Arguments are sent in the query of a GET or HEAD and as a form
body otherwise; a repeated key becomes a list, sent as repeated keys. Values
that look like JSON numbers are kept as numbers, others are strings.

With --wait, add then waits for the task and prints its result as
"hookq wait" does, with the same exit code.

Without a running server the task is stored directly, and runs when
"hookq serve" starts.

With --from FILE (- for standard input), add reads one task object per
line (JSON lines), such as {"url": "http://h/hook", "args": {"x": 1}}. A
line holds the input fields of the HTTP API's task object: url, method,
args, headers, json, protocol, max_attempts, timeout, run_at and key. The
output fields of a task object (id, state, attempts, created_at, result,
error, ...) are ignored, so that what "hookq ls --json" printed can be
added again, as new tasks. Add checks every line before it stores any, and
stops with the line numbers of the invalid ones if there are. It then
stores the tasks in chunks of up to 1,000, one commit each, and prints
their IDs in the order of the lines (with --quiet, only how many it
added). Blank lines and a byte order mark at the start are skipped.`,
		Example: `  hookq add http://127.0.0.1:8000/multiply x=10 y=10
  hookq add --wait http://127.0.0.1:8000/multiply x=10 y=10
  hookq add --method POST --header 'Authorization: Bearer t0k3n' https://example.com/hook id=7
  hookq add --json '{"event":"signup"}' --key signup-42 https://example.com/hook
  hookq add --json @payload.json --in 10m --max-attempts 1 https://example.com/hook
  hookq add --from tasks.jsonl > ids.txt
  jq -c '.[]' tasks.json | hookq add --from - --quiet
  hookq --data old ls --json --limit 1000 | jq -c '.[]' | hookq --data new add --from -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.from != "" {
				return nil // addFrom says what is wrong with args
			}
			return usageArgs(cobra.MinimumNArgs(1))(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.from != "" {
				return a.addFrom(cmd, args, &f)
			}
			if f.quiet {
				return usagef("--quiet goes with --from")
			}
			return a.add(cmd, args, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.method, "method", "X", "", "HTTP method (default GET, or POST with --json)")
	fl.StringVar(&f.json, "json", "",
		"JSON body to send; @FILE reads a file, - or @- standard input")
	fl.StringArrayVarP(&f.headers, "header", "H", nil,
		`extra request header "Name: value" (repeatable, once per name)`)
	fl.DurationVar(&f.in, "in", 0, "run the first attempt after this long")
	fl.StringVar(&f.at, "at", "",
		"run the first attempt at this time (RFC 3339, such as 2030-01-02T15:04:05Z)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0,
		"attempts before giving up, up to 1000; 1 means no retry (default: the queue's)")
	fl.DurationVar(&f.timeout, "timeout", 0,
		"deadline of each attempt, up to 1h (default: the queue's)")
	fl.StringVar(&f.key, "key", "",
		"idempotency key: while a task with it is kept, add returns that task")
	fl.StringVar(&f.protocol, "protocol", "", "how the reply is read: celery (default) or plain")
	fl.BoolVar(&f.wait, "wait", false, `wait for the task and print its result, as "hookq wait"`)
	fl.DurationVar(&f.waitTimeout, "wait-timeout", 0,
		"with --wait, give up after this long (0: never)")
	fl.StringVar(&f.from, "from", "",
		"add the tasks of this file, one JSON task object per line; - reads standard input")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "with --from, print how many tasks were added, not their IDs")
	cmd.RegisterFlagCompletionFunc("protocol", cobra.FixedCompletions(
		[]cobra.Completion{"celery", "plain"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("method", cobra.FixedCompletions(
		[]cobra.Completion{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
		cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// add runs "hookq add".
func (a *app) add(cmd *cobra.Command, args []string, f *addFlags) error {
	spec, err := f.spec(args, a.stdin)
	if err != nil {
		return err
	}
	// Check the task here, so that an invalid one gets the same message
	// and exit code with a server as without (whose request limits would
	// otherwise speak first).
	if err := spec.Validate(); err != nil {
		return err
	}
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()

	api, err := a.connect(writeAccess, stderr)
	if err != nil {
		return err
	}
	t, err := api.Enqueue(ctx, spec)
	// Close before waiting: a direct open must not keep a server out.
	if cerr := api.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if outcomeUnknown(api, err) {
		return &causeError{
			msg: failure(ctx, err) + "; the task may or may not have been added; " +
				"with --key, adding it again is safe",
			cause: err,
		}
	}
	if err != nil {
		return err
	}
	if t.Existing { // an idempotency key matched a kept task
		fmt.Fprintf(stderr, "hookq: key %s matched existing task %s; nothing added\n",
			printable(spec.Key), t.ID)
	}
	if !f.wait {
		_, err := fmt.Fprintln(cmd.OutOrStdout(), t.ID)
		return err
	}
	if !t.State.Final() {
		t, err = a.await(ctx, t.ID, f.waitTimeout, stderr)
		if err != nil {
			return err
		}
	}
	return printOutcome(cmd.OutOrStdout(), t)
}

// Limits of a task's flags, the same as the queue's limits on a task.
const (
	maxTaskAttempts = queue.MaxTaskAttempts
	maxTaskTimeout  = queue.MaxTaskTimeout
)

// spec builds the task from the command line.
func (f *addFlags) spec(args []string, stdin io.Reader) (queue.Spec, error) {
	spec := queue.Spec{
		URL:         args[0],
		Method:      f.method,
		MaxAttempts: f.maxAttempts,
		Timeout:     queue.Duration(f.timeout),
		Key:         f.key,
		Protocol:    f.protocol,
	}
	var err error
	if spec.Args, err = parseArgs(args[1:]); err != nil {
		return spec, err
	}
	if spec.Headers, err = parseHeaders(f.headers); err != nil {
		return spec, err
	}
	if f.json != "" {
		if spec.JSON, err = readJSON(f.json, stdin); err != nil {
			return spec, err
		}
	}

	// When to run.
	switch {
	case f.maxAttempts < 0 || f.maxAttempts > maxTaskAttempts:
		return spec, usagef("--max-attempts %d is out of range: 1 to %d, or 0 for the default",
			f.maxAttempts, maxTaskAttempts)
	case f.timeout < 0 || f.timeout > maxTaskTimeout:
		return spec, usagef("--timeout %s is out of range: up to %s, or 0 for the default",
			f.timeout, maxTaskTimeout)
	case f.waitTimeout < 0:
		return spec, usagef("--wait-timeout %s is negative", f.waitTimeout)
	case f.in < 0:
		return spec, usagef("--in %s is negative", f.in)
	case f.in > 0 && f.at != "":
		return spec, usagef("--in and --at cannot be used together")
	case f.in > 0:
		at := time.Now().Add(f.in)
		spec.RunAt = &at
	case f.at != "":
		at, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return spec, usagef("--at %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", f.at)
		}
		spec.RunAt = &at
	}
	return spec, nil
}

// jsonNumber matches the JSON number grammar.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// parseArgs turns key=value arguments into task arguments. Values that are
// JSON numbers become numbers (sent with the same text), others strings; a
// repeated key becomes a list.
func parseArgs(kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	args := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("argument %q is not key=value", kv)
		}
		var val any = v
		if jsonNumber.MatchString(v) {
			val = json.Number(v)
		}
		switch prev := args[k].(type) {
		case nil:
			args[k] = val
		case []any:
			args[k] = append(prev, val)
		default:
			args[k] = []any{prev, val}
		}
	}
	return args, nil
}

// parseHeaders turns "Name: value" flags into headers. A name given twice,
// in any case, is a usage error: a task sends one value per header.
func parseHeaders(hs []string) (map[string]string, error) {
	if len(hs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(hs))
	seen := make(map[string]bool, len(hs)) // lower-cased names
	for _, h := range hs {
		k, v, ok := strings.Cut(h, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usagef("--header %q is not \"Name: value\"", h)
		}
		if seen[strings.ToLower(k)] {
			return nil, usagef("--header %q is given more than once", k)
		}
		seen[strings.ToLower(k)] = true
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// readJSON returns the body given to --json: the text itself, a file's
// contents with @FILE, standard input with - or @-. It must be valid JSON.
func readJSON(arg string, stdin io.Reader) (json.RawMessage, error) {
	var data []byte
	var err error
	switch {
	case arg == "-" || arg == "@-":
		data, err = io.ReadAll(stdin)
	case strings.HasPrefix(arg, "@"):
		data, err = os.ReadFile(arg[1:])
	default:
		data = []byte(arg)
	}
	if err != nil {
		return nil, fmt.Errorf("read --json body: %w", err)
	}
	if !json.Valid(data) {
		return nil, usagef("--json body is not valid JSON")
	}
	return data, nil
}
