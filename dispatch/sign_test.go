package dispatch

import (
	"strings"
	"testing"
	"time"
)

// TestSign checks the published Standard Webhooks test vector, as found in
// the reference libraries' tests (for example svix-webhooks,
// php/tests/WebhookTest.php, testSignFunctionWorks).
func TestSign(t *testing.T) {
	key, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`))
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got != want {
		t.Errorf("Sign = %s; want %s", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		wantLen int
		wantErr string
	}{
		{name: "TestVector", secret: testSecret, wantLen: 24},
		{name: "Unpadded", secret: "whsec_" + strings.Repeat("A", 43), wantLen: 32},
		{name: "Padded", secret: "whsec_" + strings.Repeat("A", 43) + "=", wantLen: 32},
		{name: "NoPrefix", secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", wantErr: "must start with"},
		{name: "Empty", secret: "", wantErr: "must start with"},
		{name: "NotBase64", secret: "whsec_!!!!notbase64!!!!", wantErr: "not valid base64"},
		{name: "TooShort", secret: "whsec_c2hvcnQ=", wantErr: "at least 24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParseSecret(tt.secret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSecret err = %v; want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimPrefix(tt.secret, "whsec_")) &&
					tt.secret != "" {
					t.Errorf("error %q quotes the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSecret: %v", err)
			}
			if len(key) != tt.wantLen {
				t.Errorf("key is %d bytes; want %d", len(key), tt.wantLen)
			}
		})
	}
}

func TestNew_BadSecret(t *testing.T) {
	_, err := New(Options{SigningSecrets: []string{testSecret, "whsec_c2hvcnQ="}})
	if err == nil || !strings.Contains(err.Error(), "signing secret 2") {
		t.Errorf("New err = %v; want one naming signing secret 2", err)
	}
}
