package dispatch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const (
	// secretPrefix starts every signing secret, as in Standard Webhooks.
	secretPrefix = "whsec_"

	// minSecretBytes is the shortest key accepted: the Standard Webhooks
	// specification asks for 24 to 64 bytes.
	minSecretBytes = 24
)

// ParseSecret decodes a signing secret of the form "whsec_<base64>" into
// its key bytes. Padding is optional. The key must be at least 24 bytes
// long. Errors never quote the secret.
func ParseSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("parse secret: must start with %q", secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(enc)
	}
	if err != nil {
		return nil, errors.New("parse secret: key is not valid base64")
	}
	if len(key) < minSecretBytes {
		return nil, fmt.Errorf("parse secret: key is %d bytes, want at least %d",
			len(key), minSecretBytes)
	}
	return key, nil
}

// Sign returns the Standard Webhooks signature "v1,<base64>" of one
// delivery: the HMAC-SHA256, keyed by secret, of "{id}.{ts}.{payload}"
// where ts is in unix seconds. See the package doc for what payload is.
func Sign(secret []byte, id string, ts time.Time, payload []byte) string {
	mac := hmac.New(sha256.New, secret)
	io.WriteString(mac, id)
	io.WriteString(mac, ".")
	io.WriteString(mac, strconv.FormatInt(ts.Unix(), 10))
	io.WriteString(mac, ".")
	mac.Write(payload)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signature is the webhook-signature header value: one signature per key,
// separated by spaces, so that receivers can rotate secrets.
func (d *Dispatcher) signature(id string, ts time.Time, payload []byte) string {
	sigs := make([]string, len(d.keys))
	for i, key := range d.keys {
		sigs[i] = Sign(key, id, ts, payload)
	}
	return strings.Join(sigs, " ")
}
