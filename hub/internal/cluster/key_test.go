package cluster

import (
	"bytes"
	"errors"
	"slices"
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
