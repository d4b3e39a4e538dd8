package dispatch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"time"

	"github.com/hookq/hookq/dispatch"
)

func ExampleDispatcher_Do() {
	// An endpoint in the Celery style: multiply x by y.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, _ := strconv.Atoi(r.FormValue("x"))
		y, _ := strconv.Atoi(r.FormValue("y"))
		fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
	}))
	defer srv.Close()

	d, err := dispatch.New(dispatch.Options{})
	if err != nil {
		panic(err)
	}
	defer d.Close()

	out := d.Do(context.Background(), &dispatch.Request{
		ID:   "01JF0000000000000000000000",
		URL:  srv.URL + "/multiply",
		Args: url.Values{"x": {"10"}, "y": {"10"}},
	})
	fmt.Println(out.Verdict, string(out.Result))
	// Output: succeeded 100
}

func ExampleParseReply() {
	for _, body := range []string{
		`{"status":"success","retval":[1,2]}`,
		`{"status":"failure","reason":"out of stock"}`,
		`{"status":"done"}`,
	} {
		out := dispatch.ParseReply(dispatch.Celery, []byte(body))
		if out.Err != nil {
			fmt.Println(out.Verdict, out.Err)
			continue
		}
		fmt.Println(out.Verdict, string(out.Result))
	}
	// Output:
	// succeeded [1,2]
	// failed remote: out of stock
	// failed invalid_response: invalid response: unknown status "done"
}

func ExampleSign() {
	key, err := dispatch.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	sig := dispatch.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`))
	fmt.Println(sig)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}
