package modes

import (
	"runtime/debug"
	"testing"
)

// TestVersionFrom: --version names the commit the toolchain recorded, so a
// report identifies the source even without -X main.version.
func TestVersionFrom(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return info
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "relaymail 1.2.3"},
		{"no vcs (tarball, -buildvcs=false)", vcs("-trimpath", "true"), "relaymail 1.2.3"},
		{"clean commit", vcs("vcs.revision", "3223812afc384a9c6d7fac48ac19d976d899e6af", "vcs.time", "2026-12-06T23:50:36Z", "vcs.modified", "false"),
			"relaymail 1.2.3 (3223812afc38 2026-12-06T23:50:36Z)"},
		{"modified tree", vcs("vcs.revision", "3223812afc384a9c6d7fac48ac19d976d899e6af", "vcs.modified", "true"),
			"relaymail 1.2.3 (3223812afc38+modified)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionFrom("1.2.3", tc.info); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
