package jointoken

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

var testFP = "sha256:" + strings.Repeat("ab", 32)

func TestGenerateRoundTrip(t *testing.T) {
	tok, err := Generate(strings.ToUpper(testFP))
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.ID) != 12 || !isHex(tok.ID) {
		t.Errorf("id %q: want 12 lowercase hex", tok.ID)
	}
	if len(tok.Secret) != 32 || !isBase32(tok.Secret) {
		t.Errorf("secret has %d characters: want 32 base32", len(tok.Secret))
	}
	if tok.CAFingerprint != testFP {
		t.Errorf("fingerprint %q: want %q", tok.CAFingerprint, testFP)
	}
	s := tok.String()
	if want := "flt1." + tok.ID + "." + tok.Secret + "." + strings.Repeat("ab", 32); s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
	back, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if back != tok {
		t.Errorf("Parse(String()) = %#v, want %#v", back, tok)
	}
	other, err := Generate(testFP)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Error("two generated tokens share an id or a secret")
	}
}

func TestGenerateRejectsBadFingerprint(t *testing.T) {
	for _, fp := range []string{"", "sha256:", "sha1:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("g", 64), "sha256:" + strings.Repeat("a", 63)} {
		if _, err := Generate(fp); err == nil {
			t.Errorf("Generate(%q): want error", fp)
		}
	}
}

func TestParse(t *testing.T) {
	id := "0123456789ab"
	secret := "abcdefghijklmnopqrstuvwxyz234567"
	hash := strings.Repeat("0f", 32)
	tests := []struct {
		name    string
		in      string
		want    Token
		wantErr bool
	}{
		{name: "valid", in: "flt1." + id + "." + secret + "." + hash, want: Token{ID: id, Secret: secret, CAFingerprint: "sha256:" + hash}},
		{name: "white space and upper case", in: "  FLT1." + strings.ToUpper(id+"."+secret+"."+hash) + "\n", want: Token{ID: id, Secret: secret, CAFingerprint: "sha256:" + hash}},
		{name: "empty", in: "", wantErr: true},
		{name: "wrong version", in: "flt2." + id + "." + secret + "." + hash, wantErr: true},
		{name: "too few fields", in: "flt1." + id + "." + secret, wantErr: true},
		{name: "too many fields", in: "flt1." + id + "." + secret + "." + hash + ".x", wantErr: true},
		{name: "short id", in: "flt1.0123." + secret + "." + hash, wantErr: true},
		{name: "non-hex id", in: "flt1.0123456789az." + secret + "." + hash, wantErr: true},
		{name: "short secret", in: "flt1." + id + "." + secret[:31] + "." + hash, wantErr: true},
		{name: "secret outside base32", in: "flt1." + id + "." + secret[:31] + "1." + hash, wantErr: true},
		{name: "short hash", in: "flt1." + id + "." + secret + "." + hash[:62], wantErr: true},
		{name: "hash with prefix", in: "flt1." + id + "." + secret + ".sha256:" + hash, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse: want error, got %#v", got)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v does not wrap ErrMalformed", err)
				}
				if strings.Contains(strings.ToLower(err.Error()), secret[:20]) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Parse = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestSecretNeverPrintedByLoggers(t *testing.T) {
	tok, err := Generate(testFP)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("token", "token", tok)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("token", "token", tok)
	fmt.Fprintf(&buf, "%#v", tok)
	if strings.Contains(buf.String(), tok.Secret) {
		t.Errorf("secret in output: %s", buf.String())
	}
	if !strings.Contains(buf.String(), tok.ID) {
		t.Errorf("id missing from output: %s", buf.String())
	}
}

func TestHashSecret(t *testing.T) {
	want := sha256.Sum256([]byte("s3cret"))
	if got := HashSecret("s3cret"); !bytes.Equal(got, want[:]) {
		t.Errorf("HashSecret = %x, want %x", got, want)
	}
	if bytes.Equal(HashSecret("a"), HashSecret("b")) {
		t.Error("different secrets hash alike")
	}
}
