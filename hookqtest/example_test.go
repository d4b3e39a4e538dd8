package hookqtest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hookq/hookq/dispatch"
	"github.com/hookq/hookq/hookqtest"
	"github.com/hookq/hookq/queue"
)

// A queue whose tasks go to a handler in process: the URL's host is never
// resolved. In a test, hookqtest.Open(t, h, nil) does the opening and
// closing shown here.
func Example() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, _ := strconv.Atoi(r.FormValue("x"))
		y, _ := strconv.Atoi(r.FormValue("y"))
		fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
	})

	dir, err := os.MkdirTemp("", "hookqtest-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(filepath.Join(dir, "hookq.db"), &queue.Options{
		Dispatch: dispatch.Options{Transport: hookqtest.Transport(h)},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()

	ctx := context.Background()
	for _, x := range []int{6, 7} {
		spec := queue.Spec{URL: "http://billing.internal/multiply", Args: map[string]any{"x": x, "y": 7}}
		if _, err := q.Enqueue(ctx, spec); err != nil {
			log.Fatal(err)
		}
	}
	tasks, err := hookqtest.WaitFinal(ctx, q)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range tasks {
		fmt.Println(t.State, string(t.Result))
	}
	// Output:
	// succeeded 42
	// succeeded 49
}
