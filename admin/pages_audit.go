package admin

import (
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// auditFilters are the query parameters the audit page passes on.
var auditFilters = []string{"user", "kind", "result", "since", "until", "cursor"}

// auditPage is one page of the audit log.
type auditPage struct {
	Filter map[string]string
	Events []authstore.Event
	Next   template.URL // the next page, "" at the end
	Export template.URL // the export of the filtered log
}

// auditFilterQuery is the page's filter (dates as the form has them) with
// a cursor.
func auditFilterQuery(q url.Values, cursor string) url.Values {
	out := url.Values{}
	for _, k := range auditFilters {
		if v := q.Get(k); v != "" && k != "cursor" {
			out.Set(k, v)
		}
	}
	if cursor != "" {
		out.Set("cursor", cursor)
	}
	return out
}

// auditAPIQuery is the filter as the audit query takes it: the form's
// days become RFC 3339 times, "until" a day including its whole.
func auditAPIQuery(q url.Values, cursor string) url.Values {
	out := auditFilterQuery(q, cursor)
	for k, add := range map[string]time.Duration{"since": 0, "until": 24 * time.Hour} {
		if day, err := time.Parse(time.DateOnly, out.Get(k)); err == nil {
			out.Set(k, day.Add(add).Format(time.RFC3339))
		}
	}
	return out
}

func (c *pageCall) audit() {
	q := c.r.URL.Query()
	d := auditPage{Filter: map[string]string{}}
	for _, k := range auditFilters {
		d.Filter[k] = q.Get(k)
	}
	query := auditAPIQuery(q, q.Get("cursor"))
	query.Set("limit", "50")
	out, err := c.p.srv.listAudit(c.ctx, c.who, query)
	if err != nil {
		c.failed(err)
		return
	}
	d.Events = out.Events
	if out.NextCursor != "" {
		d.Next = template.URL("/admin/audit?" + auditFilterQuery(q, out.NextCursor).Encode())
	}
	d.Export = template.URL("/admin/audit/export?" + auditFilterQuery(q, "").Encode())
	c.render(http.StatusOK, "audit", "Audit log", d)
}

func (c *pageCall) auditExport() {
	evs, err := c.p.srv.exportAudit(c.ctx, c.who, auditAPIQuery(c.r.URL.Query(), ""))
	if err != nil {
		c.failed(err)
		return
	}
	c.w.Header().Set("Content-Disposition", `attachment; filename="postern-audit.jsonl"`)
	writeJSONLines(c.w, evs)
}

// tokensPage lists the API tokens, with a new one's secret shown once.
type tokensPage struct {
	Tokens []authstore.Token
	New    *authstore.Token
	Secret string
}

func (c *pageCall) renderTokens(d tokensPage) {
	out, err := c.p.srv.listTokens(c.ctx, c.who)
	if err != nil {
		c.failed(err)
		return
	}
	d.Tokens = out.Tokens
	c.render(http.StatusOK, "tokens", "API tokens", d)
}

func (c *pageCall) createToken() {
	f := c.form
	in := api.NewTokenRequest{Name: f.Get("name"), Role: authstore.Role(f.Get("role")), User: f.Get("user")}
	out, err := c.p.srv.createToken(c.ctx, c.who, in)
	if err != nil {
		c.actionFailed(err)
		return
	}
	c.renderTokens(tokensPage{New: &out.Token, Secret: out.Secret})
}

func (c *pageCall) revokeToken() {
	if err := c.p.srv.revokeToken(c.ctx, c.who, c.param("id")); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/admin/tokens", "tokenrevoked")
}
