package admin

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// TestSendingScope: the account page offers "sending mail (SMTP)" beside
// the other scopes, so a person can make a password that only sends (a
// scanner's); a password limited to reading mail says how to add sending,
// and one that sends does not. The API takes the scope and its document
// lists it among the scopes.
func TestSendingScope(t *testing.T) {
	e, _, plain := pageEnv(t)
	page := plain.page("GET", "/account", nil, nil).Body.String()
	if !strings.Contains(page, `<input type="checkbox" name="scope" value="smtp" checked> sending mail (SMTP)</label>`) {
		t.Errorf("the create form does not offer sending:\n%s", page)
	}
	rec := plain.page("POST", "/account/app-passwords", url.Values{csrfField: {plain.csrf}, "name": {"scanner"}, "scope": {"smtp"}}, nil)
	if rec.Code != 200 {
		t.Fatalf("create from the page: %d %s", rec.Code, rec.Body)
	}
	var out api.NewAppPasswordResponse
	plain.must(200, "POST", "/api/v1/me/app-passwords", map[string]any{"name": "printer", "scopes": []string{"smtp"}}).decode(t, &out)
	if !slices.Equal(out.AppPassword.Scopes, []authstore.Protocol{authstore.SMTP}) {
		t.Errorf("API: scopes %v", out.AppPassword.Scopes)
	}
	for name, scopes := range map[string][]authstore.Protocol{"archiver": {authstore.IMAP}, "phone": nil, "calendar": {authstore.CalDAV}} {
		if _, _, err := e.st.CreateAppPassword(e.ctx(), "alice", authstore.NewAppPassword{Name: name, Scopes: scopes}); err != nil {
			t.Fatal(err)
		}
	}
	aps, err := e.st.ListAppPasswords(bg, "alice")
	if err != nil {
		t.Fatal(err)
	}
	page = plain.page("GET", "/account", nil, nil).Body.String()
	for _, ap := range aps {
		item := regexp.MustCompile(`(?s)<li data-id="` + ap.ID + `">.*?</li>`).FindString(page)
		if hint := strings.Contains(item, `class="hint send-hint"`); hint != (ap.Name == "archiver") {
			t.Errorf("%s (%v): hint shown %v:\n%s", ap.Name, ap.Scopes, hint, item)
		}
		if ap.Name == "scanner" && !strings.Contains(item, "<dd>sending mail (SMTP)</dd>") {
			t.Errorf("the page's scanner password is not for sending alone:\n%s", item)
		}
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Items struct {
						Enum []string `json:"enum"`
					} `json:"items"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.srv.openapi, &doc); err != nil {
		t.Fatal(err)
	}
	for _, schema := range []string{"NewAppPasswordRequest", "AppPassword"} {
		if got := doc.Components.Schemas[schema].Properties["scopes"].Items.Enum; !slices.Equal(got, []string{"imap", "pop3", "smtp", "caldav", "carddav", "activesync"}) {
			t.Errorf("the document's %s scopes: %v", schema, got)
		}
	}
	if r := plain.do("POST", "/api/v1/me/app-passwords", map[string]any{"name": "fax", "scopes": []string{"fax"}}); r.code != 422 {
		t.Errorf("an unknown scope: %d %s", r.code, r.body)
	}
}
