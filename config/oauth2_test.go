package config

import (
	"relaymail/relay"

	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestOAuth2Validation checks each sentence about [smarthost.oauth2].
func TestOAuth2Validation(t *testing.T) {
	const sh = "[smarthost]\nhost = \"smtp.example.com\"\nusername = \"robot@example.com\"\n[smarthost.oauth2]\n"
	const ms = sh + "provider = \"microsoft\"\nclient_id = \"c\"\n"
	tests := []struct {
		name, doc, want string
	}{
		{"no grant", sh + "provider = \"google\"", `smarthost.oauth2.grant is required (client_credentials, refresh_token or jwt_bearer)`},
		{"bad grant", sh + "grant = \"password\"\nprovider = \"google\"", `smarthost.oauth2.grant must be client_credentials, refresh_token or jwt_bearer, not "password"`},
		{"bad provider", sh + "grant = \"jwt_bearer\"\nprovider = \"yahoo\"\nservice_account_file = \"/k.json\"", `smarthost.oauth2.provider must be microsoft or google, not "yahoo" (or leave it out and set token_url and scope)`},
		{"no token_url", sh + "grant = \"jwt_bearer\"\nservice_account_file = \"/k.json\"", `smarthost.oauth2.token_url is required without provider = "microsoft" or "google"`},
		{"http token_url", sh + "grant = \"jwt_bearer\"\nservice_account_file = \"/k.json\"\ntoken_url = \"http://login.example/token\"", `smarthost.oauth2.token_url must be an https URL (secrets are sent to it), not "http://login.example/token"`},
		{"tenant needed", ms + "grant = \"client_credentials\"\nclient_secret_file = \"/s\"", `smarthost.oauth2.tenant is required for an app-only (client_credentials) Microsoft token`},
		{"no client credential", ms + "grant = \"client_credentials\"\ntenant = \"t.example\"", `smarthost.oauth2.grant = "client_credentials" needs client_secret_file or client_certificate_file`},
		{"two client credentials", ms + "grant = \"client_credentials\"\ntenant = \"t.example\"\nclient_secret_file = \"/s\"\nclient_certificate_file = \"/c.pem\"", `smarthost.oauth2.client_secret_file and client_certificate_file are set but only one client credential may be`},
		{"no refresh file", ms + "grant = \"refresh_token\"", `smarthost.oauth2.refresh_token_file is required for grant = "refresh_token" (relaymail --oauth2-login writes it)`},
		{"unused key", ms + "grant = \"refresh_token\"\nrefresh_token_file = \"/r\"\nservice_account_file = \"/k\"", `smarthost.oauth2.service_account_file is not used with grant = "refresh_token"; remove it`},
		{"relative path", ms + "grant = \"refresh_token\"\nrefresh_token_file = \"r\"", `smarthost.oauth2.refresh_token_file must be an absolute path, not "r"`},
		{"with password", strings.Replace(ms, "[smarthost.oauth2]", "password_file = \"/p\"\n[smarthost.oauth2]", 1) + "grant = \"refresh_token\"\nrefresh_token_file = \"/r\"", `smarthost.password_file and [smarthost.oauth2] are set but only one credential may be`},
		{"no username", strings.Replace(ms, "username = \"robot@example.com\"\n", "", 1) + "grant = \"refresh_token\"\nrefresh_token_file = \"/r\"", `smarthost.username (the mailbox) is required with [smarthost.oauth2]`},
		{"plain auth", strings.Replace(ms, "[smarthost.oauth2]", "auth = \"plain\"\n[smarthost.oauth2]", 1) + "grant = \"refresh_token\"\nrefresh_token_file = \"/r\"", `smarthost.auth must be xoauth2 or oauthbearer with [smarthost.oauth2], not "plain"`},
		{"unknown key", ms + "grant = \"refresh_token\"\nrefresh_token_file = \"/r\"\nclient_secret = \"x\"", `9:1: unknown key "smarthost.oauth2.client_secret"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testEnv.parse([]byte(tt.doc), "/etc/relaymail.toml")
			msg := checkErr(t, err)
			want := "config: /etc/relaymail.toml: " + tt.want
			if strings.HasPrefix(tt.want, "9:1") {
				want = "config: /etc/relaymail.toml:" + tt.want
			}
			if msg != want {
				t.Errorf("\n got %s\nwant %s", msg, want)
			}
		})
	}
}

// TestOAuth2Providers checks what provider fills in.
func TestOAuth2Providers(t *testing.T) {
	const sh = "[smarthost]\nhost = \"smtp.example.com\"\nusername = \"robot@example.com\"\n[smarthost.oauth2]\n"
	tests := []struct {
		name, doc string
		want      OAuth2
	}{
		{"microsoft app-only", sh + "grant = \"client_credentials\"\nprovider = \"microsoft\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\nclient_secret_file = \"/s\"",
			OAuth2{Grant: GrantClientCredentials, Provider: "microsoft", Tenant: "contoso.onmicrosoft.com", ClientID: "c", ClientSecretFile: "/s",
				TokenURL:      "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
				DeviceAuthURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode",
				AuthURL:       "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
				Scopes:        []string{"https://outlook.office365.com/.default"}}},
		{"microsoft delegated", sh + "grant = \"refresh_token\"\nprovider = \"microsoft\"\nclient_id = \"c\"\nrefresh_token_file = \"/r\"",
			OAuth2{Grant: GrantRefreshToken, Provider: "microsoft", Tenant: "organizations", ClientID: "c", RefreshTokenFile: "/r",
				TokenURL:      "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
				DeviceAuthURL: "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode",
				AuthURL:       "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize",
				Scopes:        []string{"https://outlook.office365.com/SMTP.Send", "offline_access"}}},
		{"google service account", sh + "grant = \"jwt_bearer\"\nprovider = \"google\"\nservice_account_file = \"/k.json\"",
			OAuth2{Grant: GrantJWTBearer, Provider: "google", ServiceAccountKey: "/k.json",
				TokenURL: "https://oauth2.googleapis.com/token", AuthURL: "https://accounts.google.com/o/oauth2/v2/auth",
				Scopes: []string{"https://mail.google.com/"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, testEnv, tt.doc)
			sh := cfg.Smarthosts[0]
			if sh.Auth != relay.AuthXOAuth2 || sh.OAuth2 == nil {
				t.Fatalf("auth %q, oauth2 %v", sh.Auth, sh.OAuth2)
			}
			if !reflect.DeepEqual(*sh.OAuth2, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", *sh.OAuth2, tt.want)
			}
			if !strings.Contains(sh.String(), "oauth2 "+tt.want.Grant) {
				t.Errorf("String() = %s", sh.String())
			}
		})
	}
}

// TestOAuth2SecretFilesReadableByAll: like password_file, a secret file of
// [smarthost.oauth2] that every user may read makes the config invalid.
func TestOAuth2SecretFilesReadableByAll(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s\n"), 0o644)
	os.Chmod(secret, 0o644)
	path := filepath.Join(dir, "relaymail.toml")
	doc := "hostname = \"h.example\"\n[smarthost]\nhost = \"smtp.example.com\"\nusername = \"r@example.com\"\n[smarthost.oauth2]\n" +
		"grant = \"client_credentials\"\nprovider = \"microsoft\"\ntenant = \"t.example\"\nclient_id = \"c\"\nclient_secret_file = \"" + secret + "\"\n"
	os.WriteFile(path, []byte(doc), 0o640)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "oauth2 client_secret_file "+secret+" holds a password but is readable by all users") {
		t.Errorf("err = %v", err)
	}
	os.Chmod(secret, 0o640)
	if _, err := Load(path); err != nil {
		t.Errorf("mode 0640: %v", err)
	}
}
