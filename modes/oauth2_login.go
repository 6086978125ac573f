package modes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"relaymail/config"
	"relaymail/delivery"
	"relaymail/internal/privilege"
	"relaymail/oauth"
)

// oauth2Login is --oauth2-login: sign in interactively for the first
// smarthost whose [oauth2] grant is refresh_token, and write its
// refresh_token_file. The config and client secret are read with the
// setgid group; the group is given up before the file is written, so only
// root (or whoever owns the file's directory) can write it: a caller must
// not be able to plant a grant of its own, nor make relaymail write with
// the group's rights to a path it chose.
func (inv *Invocation) oauth2Login(ctx context.Context) error {
	var sh *config.Smarthost
	for i := range inv.cfg.Smarthosts {
		if o := inv.cfg.Smarthosts[i].OAuth2; o != nil && o.Grant == config.GrantRefreshToken {
			sh = &inv.cfg.Smarthosts[i]
			break
		}
	}
	if sh == nil {
		return fmt.Errorf("%w: --oauth2-login needs a [smarthost.oauth2] with grant = \"refresh_token\" in %s", config.ErrConfig, inv.cfg.Path)
	}
	rt, err := oauth.Login(ctx, sh.OAuth2, sh.Username, inv.Stdout)
	if err != nil {
		return fmt.Errorf("%w: %v", delivery.ErrTemporary, err)
	}
	gid := -1
	if os.Getuid() == 0 {
		// Root writes for the group relaymail runs as, which must be
		// able to save a rotated token.
		gid = os.Getegid()
		if gid == 0 {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Dir(sh.OAuth2.RefreshTokenFile), &st) == nil {
				gid = int(st.Gid)
			}
		}
	}
	if err := privilege.Drop(); err != nil {
		return fmt.Errorf("%w: %v", config.ErrConfig, err)
	}
	if err := oauth.SaveLogin(sh.OAuth2.RefreshTokenFile, rt, gid); err != nil {
		return fmt.Errorf("%w: %v", ErrNotAllowed, err)
	}
	oauth.New(sh.OAuth2, sh.Username, inv.cfg.Queue.Dir, sh.Timeout).Forget()
	fmt.Fprintf(inv.Stdout, "Signed in; the refresh token is in %s.\n", sh.OAuth2.RefreshTokenFile)
	return nil
}
