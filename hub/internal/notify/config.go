package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Sink types.
const (
	SinkWebhook = "webhook"
	SinkSlack   = "slack"
)

// Defaults of Config.
const (
	DefaultQueueSize    = 256
	DefaultMaxAttempts  = 5
	DefaultRetryBackoff = time.Second
	DefaultMaxBackoff   = 30 * time.Second
	DefaultTimeout      = 10 * time.Second
)

// maxURLFileSize bounds what is read from a URL file.
const maxURLFileSize = 64 << 10

// Config is the notifications file of `flotilla hub --notifications`:
//
//	sinks:
//	- name: ops
//	  type: webhook            # or slack
//	  urlFile: /etc/flotilla/ops-url
//	  events: [drift-detected, sync-failed]   # default: every event
//	maxAttempts: 5
//	retryBackoff: 1s
type Config struct {
	Sinks []SinkConfig `json:"sinks"`
	// QueueSize bounds the notifications waiting per sink; more are dropped and counted.
	QueueSize int `json:"queueSize,omitempty"`
	// MaxAttempts bounds the deliveries of one notification to one sink.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// RetryBackoff is the delay before the first retry; it doubles up to MaxBackoff, ±20%.
	RetryBackoff Duration `json:"retryBackoff,omitempty"`
	MaxBackoff   Duration `json:"maxBackoff,omitempty"`
	// Timeout bounds one delivery attempt.
	Timeout Duration `json:"timeout,omitempty"`
}

// SinkConfig is one destination. The URL of an incoming webhook is a credential: it is read
// from URLFile (relative paths are relative to the notifications file) at each delivery, so a
// rotated Secret mounted as a file is picked up, and it never appears in logs or errors.
type SinkConfig struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	URLFile string   `json:"urlFile"`
	Events  []string `json:"events,omitempty"`

	events map[Event]bool
}

// Wants reports whether the sink takes event e.
func (s *SinkConfig) Wants(e Event) bool { return s.events[e] }

// Duration is a time.Duration written as "10s" in YAML.
type Duration time.Duration

var _ json.Unmarshaler = (*Duration)(nil)

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads and checks a notifications file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.complete(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// complete checks the configuration and fills in the defaults; relative URL files are
// resolved against dir.
func (c *Config) complete(dir string) error {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = Duration(DefaultRetryBackoff)
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	if c.Timeout <= 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	var errs []error
	names := map[string]bool{}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		at := fmt.Sprintf("sinks[%d]", i)
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is required", at))
		case names[s.Name]:
			errs = append(errs, fmt.Errorf("%s: name %q used twice", at, s.Name))
		}
		names[s.Name] = true
		if s.Type != SinkWebhook && s.Type != SinkSlack {
			errs = append(errs, fmt.Errorf("%s: type %q: want %s or %s", at, s.Type, SinkWebhook, SinkSlack))
		}
		if s.URLFile == "" {
			errs = append(errs, fmt.Errorf("%s: urlFile is required (the URL is a secret: it is never given inline)", at))
		} else {
			if !filepath.IsAbs(s.URLFile) {
				s.URLFile = filepath.Join(dir, s.URLFile)
			}
			if _, err := readURL(s.URLFile); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", at, err))
			}
		}
		s.events = map[Event]bool{}
		if len(s.Events) == 0 {
			for _, e := range AllEvents {
				s.events[e] = true
			}
		}
		for _, name := range s.Events {
			e, err := parseEvent(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: events: %w", at, err))
				continue
			}
			s.events[e] = true
		}
	}
	return errors.Join(errs...)
}

// readURL reads a sink's URL from its file. Errors name the file, never its content.
func readURL(file string) (*url.URL, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("urlFile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxURLFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("urlFile: %w", err)
	}
	if len(data) > maxURLFileSize {
		return nil, fmt.Errorf("urlFile %s: larger than %d bytes", file, maxURLFileSize)
	}
	raw := strings.TrimSpace(string(data))
	if raw == "" {
		return nil, fmt.Errorf("urlFile %s is empty", file)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("urlFile %s: not an http or https URL", file)
	}
	return u, nil
}
