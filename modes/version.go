package modes

import "runtime/debug"

// versionLine is what --version prints: the version, then the commit the
// binary was built from as the Go toolchain recorded it (vcs.revision,
// vcs.modified, vcs.time), so a bug report names the exact source even
// when -X main.version was not set. A build without VCS information (a
// tarball, -buildvcs=false) prints the version alone.
func versionLine(version string) string {
	info, _ := debug.ReadBuildInfo()
	return versionFrom(version, info)
}

// versionFrom is versionLine for a given version and build info (nil:
// none).
func versionFrom(version string, info *debug.BuildInfo) string {
	line := "relaymail " + version
	if info == nil {
		return line
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return line
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "+modified"
	}
	if when != "" {
		rev += " " + when
	}
	return line + " (" + rev + ")"
}
