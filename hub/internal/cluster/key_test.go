package cluster

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789abcdef")
	b64 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{name: "base64", in: []byte(b64), want: raw},
		{name: "base64 with newline", in: []byte("  " + b64 + "\n"), want: raw},
		{name: "raw", in: raw, want: raw},
		{name: "raw binary", in: testKey(0xff), want: testKey(0xff)},
		{name: "raw with newline", in: append(slices.Clone(raw), '\n')},
		{name: "base64 of 16 bytes", in: []byte("MDEyMzQ1Njc4OWFiY2RlZg==")},
		{name: "empty", in: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.want == nil {
				if !errors.Is(err, ErrKeySize) {
					t.Fatalf("ParseKey = %q, %v; want ErrKeySize", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("ParseKey = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	k1 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	k2 := "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="
	raw1 := []byte("0123456789abcdef0123456789abcdef")
	raw2 := []byte("abcdefghijklmnopqrstuvwxyz123456")
	tests := []struct {
		name    string
		in      string
		want    [][]byte
		wantErr string
	}{
		{name: "one key", in: k1 + "\n", want: [][]byte{raw1}},
		{name: "raw key", in: string(raw1), want: [][]byte{raw1}},
		{name: "two keys, first primary", in: k2 + "\n" + k1 + "\n", want: [][]byte{raw2, raw1}},
		{name: "comments and blanks", in: "# rotating: new key first\n\n" + k1 + "\n  " + k2 + "  \n", want: [][]byte{raw1, raw2}},
		{name: "duplicate dropped", in: k1 + "\n" + k1 + "\n", want: [][]byte{raw1}},
		{name: "bad second line", in: k1 + "\nnot-a-key\n", wantErr: "line 2"},
		{name: "short key", in: k1 + "\nMDEyMzQ1Njc4OWFiY2RlZg==\n", wantErr: "line 2"},
		{name: "only comments", in: "# nothing\n", wantErr: "32 bytes"},
		{name: "empty", in: "", wantErr: "32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeys([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrKeySize) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKeys = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.EqualFunc(got, tt.want, bytes.Equal) {
				t.Fatalf("ParseKeys = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
