package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// caConfig returns a TLS configuration that trusts the system's roots and
// the certificates in the PEM files named, or nil when none is named. A
// file that holds no certificate is an error: a typo must not leave hookq
// trusting less than its operator believes, or failing later, per task.
func caConfig(files []string) (*tls.Config, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca-file %s holds no PEM certificate", f)
		}
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
