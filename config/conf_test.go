package config

import (
	"path/filepath"
	"relaymail/relay"
	"testing"
)

// TestExampleConfigs loads every shipped example with Load, as an
// administrator would after copying it.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../conf/*.toml")
	if err != nil || len(files) < 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		cfg, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if cfg.Smarthosts[0].Name == "" {
			t.Errorf("%s: no smarthost", f)
		}
		if filepath.Base(f) == "relaymail.toml" {
			sh := cfg.Smarthosts[0]
			if sh.Name != "smtp.example.com" || sh.Port != 587 || sh.TLS != relay.TLSStartTLS || !sh.HasPassword() ||
				cfg.Queue.Dir != DefaultQueueDir || len(cfg.Listen) != 2 {
				t.Errorf("relaymail.toml resolved to %+v", cfg)
			}
		}
	}
}
