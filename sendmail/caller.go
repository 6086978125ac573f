package sendmail

import (
	"os"
	"os/user"
	"strconv"
	"strings"
)

// Caller is the user who ran relaymail, from getuid() and the passwd
// database. $USER, $LOGNAME and $HOME are not trusted: cron passes
// HOME=/root to every user's jobs, and sudo resets them.
type Caller struct {
	UID   int
	Login string // passwd name, or "uid<N>" when the uid has no entry
	Name  string // GECOS full name (first comma field), may be ""
	Home  string // passwd home directory, may be ""
}

// LookupCaller returns the real user of this process. A uid without a
// passwd entry (common in containers) still gets a usable login name.
func LookupCaller() Caller {
	uid := os.Getuid()
	c := Caller{UID: uid, Login: "uid" + strconv.Itoa(uid)}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return c
	}
	if u.Username != "" {
		c.Login = u.Username
	}
	c.Name, _, _ = strings.Cut(u.Name, ",")
	c.Name = strings.TrimSpace(c.Name)
	c.Home = u.HomeDir
	return c
}
