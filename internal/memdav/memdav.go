// Package memdav is an in-process CalDAV and CardDAV server over go-webdav's
// handlers and a small in-memory backend: the DAV upstream of
// `postern demo`, and a fast upstream for tests and benchmarks. Like
// Radicale with http_x_remote_user, it trusts a header for the user name,
// so it must only be reachable through postern.
//
// Layout per user: CalDAV principal /dav/calendars/USER/, one calendar at
// /dav/calendars/USER/calendars/default/; CardDAV principal
// /dav/contacts/USER/, one address book at /dav/contacts/USER/books/default/.
package memdav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
	"github.com/emersion/go-webdav/carddav"
)

// Paths the handlers serve; postern's well-known redirects point here.
const (
	CalDAVPrefix  = "/dav/calendars/"
	CardDAVPrefix = "/dav/contacts/"
)

// Handler serves users' calendars and contacts; the user name comes from
// header (X-Remote-User when empty), and a request without it is refused.
func Handler(users []string, header string) http.Handler {
	if header == "" {
		header = "X-Remote-User"
	}
	st := &store{objects: map[string]*object{}, users: slices.Clone(users)}
	for _, u := range users {
		st.seed(u)
	}
	cal := &caldav.Handler{Backend: calBackend{st}, Prefix: strings.TrimSuffix(CalDAVPrefix, "/")}
	card := &carddav.Handler{Backend: cardBackend{st}, Prefix: strings.TrimSuffix(CardDAVPrefix, "/")}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get(header)
		if !slices.Contains(st.users, user) {
			http.Error(w, "no such user", http.StatusForbidden)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
		switch {
		case strings.HasPrefix(r.URL.Path+"/", CardDAVPrefix):
			card.ServeHTTP(w, r)
		default:
			cal.ServeHTTP(w, r)
		}
	})
}

// Server is Handler on a loopback listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Start serves Handler(users, "") on addr over plain HTTP.
func Start(addr string, users []string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start memory DAV: %w", err)
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: Handler(users, ""), ReadHeaderTimeout: 10 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

type userKey struct{}

func userOf(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// object is one calendar object or vCard.
type object struct {
	data []byte
	mod  time.Time
	etag string
}

type store struct {
	mu      sync.RWMutex
	users   []string
	objects map[string]*object // path → object
}

func calHome(u string) string  { return CalDAVPrefix + u + "/calendars/" }
func cardHome(u string) string { return CardDAVPrefix + u + "/books/" }

var errNotFound = webdav.NewHTTPError(http.StatusNotFound, errors.New("not found"))

func (s *store) seed(u string) {
	now := time.Now().UTC()
	event := fmt.Sprintf("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern//demo//EN\r\nBEGIN:VEVENT\r\n"+
		"UID:welcome-%s@postern\r\nDTSTAMP:%s\r\nDTSTART:%s\r\nDTEND:%s\r\nSUMMARY:Welcome to your calendar\r\n"+
		"END:VEVENT\r\nEND:VCALENDAR\r\n", u, now.Format("20060102T150405Z"),
		now.Add(24*time.Hour).Truncate(time.Hour).Format("20060102T150405Z"), now.Add(25*time.Hour).Truncate(time.Hour).Format("20060102T150405Z"))
	card := fmt.Sprintf("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:postmaster-%s@postern\r\nFN:Postmaster\r\n"+
		"N:;Postmaster;;;\r\nEMAIL:postmaster@example.org\r\nEND:VCARD\r\n", u)
	s.put(calHome(u)+"default/welcome.ics", []byte(event))
	s.put(cardHome(u)+"default/postmaster.vcf", []byte(card))
}

func (s *store) put(path string, data []byte) *object {
	sum := sha256.Sum256(data)
	o := &object{data: data, mod: time.Now().UTC(), etag: hex.EncodeToString(sum[:12])}
	s.mu.Lock()
	s.objects[path] = o
	s.mu.Unlock()
	return o
}

func (s *store) get(path string) (*object, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.objects[path]
	return o, ok
}

// list returns the objects directly in the collection dir, by path.
func (s *store) list(dir string) map[string]*object {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]*object{}
	for p, o := range s.objects {
		if rest, ok := strings.CutPrefix(p, dir); ok && !strings.Contains(rest, "/") {
			out[p] = o
		}
	}
	return out
}

func (s *store) remove(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[path]; !ok {
		return errNotFound
	}
	delete(s.objects, path)
	return nil
}

// checkPut applies If-Match and If-None-Match to path.
func (s *store) checkPut(path string, ifMatch, ifNoneMatch webdav.ConditionalMatch) error {
	o, exists := s.get(path)
	if ifNoneMatch.IsWildcard() && exists {
		return webdav.NewHTTPError(http.StatusPreconditionFailed, errors.New("exists"))
	}
	if ifMatch.IsSet() {
		if !exists {
			return webdav.NewHTTPError(http.StatusPreconditionFailed, errors.New("does not exist"))
		}
		if !ifMatch.IsWildcard() {
			if tag, err := ifMatch.ETag(); err != nil || tag != o.etag {
				return webdav.NewHTTPError(http.StatusPreconditionFailed, errors.New("etag mismatch"))
			}
		}
	}
	return nil
}

// own refuses paths outside the user's collection.
func own(path, home string) error {
	if !strings.HasPrefix(path, home) {
		return webdav.NewHTTPError(http.StatusForbidden, errors.New("not yours"))
	}
	return nil
}

type calBackend struct{ s *store }

func (b calBackend) CurrentUserPrincipal(ctx context.Context) (string, error) {
	return CalDAVPrefix + userOf(ctx) + "/", nil
}

func (b calBackend) CalendarHomeSetPath(ctx context.Context) (string, error) {
	return calHome(userOf(ctx)), nil
}

func (b calBackend) calendar(ctx context.Context) caldav.Calendar {
	return caldav.Calendar{Path: calHome(userOf(ctx)) + "default/", Name: "Calendar", SupportedComponentSet: []string{"VEVENT", "VTODO"}}
}

func (b calBackend) CreateCalendar(context.Context, *caldav.Calendar) error {
	return webdav.NewHTTPError(http.StatusForbidden, errors.New("one calendar per user"))
}

func (b calBackend) ListCalendars(ctx context.Context) ([]caldav.Calendar, error) {
	return []caldav.Calendar{b.calendar(ctx)}, nil
}

func (b calBackend) GetCalendar(ctx context.Context, path string) (*caldav.Calendar, error) {
	if c := b.calendar(ctx); path == c.Path || path+"/" == c.Path {
		return &c, nil
	}
	return nil, errNotFound
}

func (b calBackend) toObject(path string, o *object) (caldav.CalendarObject, error) {
	cal, err := ical.NewDecoder(bytes.NewReader(o.data)).Decode()
	if err != nil {
		return caldav.CalendarObject{}, err
	}
	return caldav.CalendarObject{Path: path, ModTime: o.mod, ContentLength: int64(len(o.data)), ETag: o.etag, Data: cal}, nil
}

func (b calBackend) GetCalendarObject(ctx context.Context, path string, _ *caldav.CalendarCompRequest) (*caldav.CalendarObject, error) {
	if err := own(path, calHome(userOf(ctx))); err != nil {
		return nil, err
	}
	o, ok := b.s.get(path)
	if !ok {
		return nil, errNotFound
	}
	co, err := b.toObject(path, o)
	return &co, err
}

func (b calBackend) ListCalendarObjects(ctx context.Context, path string, _ *caldav.CalendarCompRequest) ([]caldav.CalendarObject, error) {
	if err := own(path, calHome(userOf(ctx))); err != nil {
		return nil, err
	}
	var out []caldav.CalendarObject
	for p, o := range b.s.list(path) {
		co, err := b.toObject(p, o)
		if err != nil {
			return nil, err
		}
		out = append(out, co)
	}
	slices.SortFunc(out, func(a, b caldav.CalendarObject) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func (b calBackend) QueryCalendarObjects(ctx context.Context, path string, q *caldav.CalendarQuery) ([]caldav.CalendarObject, error) {
	all, err := b.ListCalendarObjects(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	return caldav.Filter(q, all)
}

func (b calBackend) PutCalendarObject(ctx context.Context, path string, cal *ical.Calendar, opts *caldav.PutCalendarObjectOptions) (*caldav.CalendarObject, error) {
	if err := own(path, b.calendar(ctx).Path); err != nil {
		return nil, err
	}
	if err := b.s.checkPut(path, opts.IfMatch, opts.IfNoneMatch); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, webdav.NewHTTPError(http.StatusBadRequest, err)
	}
	co, err := b.toObject(path, b.s.put(path, buf.Bytes()))
	return &co, err
}

func (b calBackend) DeleteCalendarObject(ctx context.Context, path string) error {
	if err := own(path, calHome(userOf(ctx))); err != nil {
		return err
	}
	return b.s.remove(path)
}

type cardBackend struct{ s *store }

func (b cardBackend) CurrentUserPrincipal(ctx context.Context) (string, error) {
	return CardDAVPrefix + userOf(ctx) + "/", nil
}

func (b cardBackend) AddressBookHomeSetPath(ctx context.Context) (string, error) {
	return cardHome(userOf(ctx)), nil
}

func (b cardBackend) book(ctx context.Context) carddav.AddressBook {
	return carddav.AddressBook{Path: cardHome(userOf(ctx)) + "default/", Name: "Contacts",
		SupportedAddressData: []carddav.AddressDataType{{ContentType: vcard.MIMEType, Version: "3.0"}, {ContentType: vcard.MIMEType, Version: "4.0"}}}
}

func (b cardBackend) ListAddressBooks(ctx context.Context) ([]carddav.AddressBook, error) {
	return []carddav.AddressBook{b.book(ctx)}, nil
}

func (b cardBackend) GetAddressBook(ctx context.Context, path string) (*carddav.AddressBook, error) {
	if ab := b.book(ctx); path == ab.Path || path+"/" == ab.Path {
		return &ab, nil
	}
	return nil, errNotFound
}

func (b cardBackend) CreateAddressBook(context.Context, *carddav.AddressBook) error {
	return webdav.NewHTTPError(http.StatusForbidden, errors.New("one address book per user"))
}

func (b cardBackend) DeleteAddressBook(context.Context, string) error {
	return webdav.NewHTTPError(http.StatusForbidden, errors.New("one address book per user"))
}

func (b cardBackend) toObject(path string, o *object) (carddav.AddressObject, error) {
	card, err := vcard.NewDecoder(bytes.NewReader(o.data)).Decode()
	if err != nil {
		return carddav.AddressObject{}, err
	}
	return carddav.AddressObject{Path: path, ModTime: o.mod, ContentLength: int64(len(o.data)), ETag: o.etag, Card: card}, nil
}

func (b cardBackend) GetAddressObject(ctx context.Context, path string, _ *carddav.AddressDataRequest) (*carddav.AddressObject, error) {
	if err := own(path, cardHome(userOf(ctx))); err != nil {
		return nil, err
	}
	o, ok := b.s.get(path)
	if !ok {
		return nil, errNotFound
	}
	ao, err := b.toObject(path, o)
	return &ao, err
}

func (b cardBackend) ListAddressObjects(ctx context.Context, path string, _ *carddav.AddressDataRequest) ([]carddav.AddressObject, error) {
	if err := own(path, cardHome(userOf(ctx))); err != nil {
		return nil, err
	}
	var out []carddav.AddressObject
	for p, o := range b.s.list(path) {
		ao, err := b.toObject(p, o)
		if err != nil {
			return nil, err
		}
		out = append(out, ao)
	}
	slices.SortFunc(out, func(a, b carddav.AddressObject) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func (b cardBackend) QueryAddressObjects(ctx context.Context, path string, q *carddav.AddressBookQuery) ([]carddav.AddressObject, error) {
	all, err := b.ListAddressObjects(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	return carddav.Filter(q, all)
}

func (b cardBackend) PutAddressObject(ctx context.Context, path string, card vcard.Card, opts *carddav.PutAddressObjectOptions) (*carddav.AddressObject, error) {
	if err := own(path, b.book(ctx).Path); err != nil {
		return nil, err
	}
	if err := b.s.checkPut(path, opts.IfMatch, opts.IfNoneMatch); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := vcard.NewEncoder(&buf).Encode(card); err != nil {
		return nil, webdav.NewHTTPError(http.StatusBadRequest, err)
	}
	ao, err := b.toObject(path, b.s.put(path, buf.Bytes()))
	return &ao, err
}

func (b cardBackend) DeleteAddressObject(ctx context.Context, path string) error {
	if err := own(path, cardHome(userOf(ctx))); err != nil {
		return err
	}
	return b.s.remove(path)
}
