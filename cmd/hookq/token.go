package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
)

// envToken names the variable that holds the API's bearer token, as an
// alternative to --token-file.
const envToken = "HOOKQ_TOKEN"

// maxConfigBytes bounds a token or routes file.
const maxConfigBytes = 1 << 20

// token returns the bearer token the TCP listener requires, from
// --token-file or $HOOKQ_TOKEN, or "" when neither is set. The token is
// never a flag's value, which any user could read in the process list.
func (f *serveFlags) token(log *slog.Logger) (string, error) {
	env, inEnv := os.LookupEnv(envToken)
	switch {
	case f.tokenFile != "" && inEnv:
		return "", usagef("both --token-file and $%s are set: use one", envToken)
	case inEnv:
		tok, err := httpapi.ParseToken(env)
		if err != nil {
			return "", usagef("$%s: %v", envToken, err)
		}
		return tok, nil
	case f.tokenFile == "":
		return "", nil
	}

	file, err := os.Open(f.tokenFile)
	if err != nil {
		return "", usagef("--token-file: %v", err)
	}
	defer file.Close()
	if fi, err := file.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the token file can be read by other users; chmod 600 it",
			slog.String(keyFile, f.tokenFile), slog.String(keyMode, fi.Mode().Perm().String()))
	}
	data, err := readBounded(file)
	if err != nil {
		return "", usagef("--token-file %s: %v", f.tokenFile, err)
	}
	tok, err := httpapi.ParseToken(string(data))
	if err != nil {
		return "", usagef("--token-file %s: %v", f.tokenFile, err)
	}
	return tok, nil
}

// readBounded reads r whole, up to maxConfigBytes.
func readBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("over %d bytes", maxConfigBytes)
	}
	return data, nil
}
