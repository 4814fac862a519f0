package memdav

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
	"github.com/emersion/go-webdav/carddav"
)

type headerClient struct{ user string }

func (h headerClient) Do(r *http.Request) (*http.Response, error) {
	r.Header.Set("X-Remote-User", h.user)
	return http.DefaultClient.Do(r)
}

func TestDiscoveryAndSeed(t *testing.T) {
	srv := httptest.NewServer(Handler([]string{"alice", "bob"}, ""))
	defer srv.Close()
	ctx := context.Background()
	hc := headerClient{"alice"}

	wc, _ := webdav.NewClient(hc, srv.URL+CalDAVPrefix)
	principal, err := wc.FindCurrentUserPrincipal(ctx)
	if err != nil || principal != CalDAVPrefix+"alice/" {
		t.Fatalf("principal %q, %v", principal, err)
	}
	cc, _ := caldav.NewClient(hc, srv.URL)
	home, err := cc.FindCalendarHomeSet(ctx, principal)
	if err != nil {
		t.Fatal(err)
	}
	cals, err := cc.FindCalendars(ctx, home)
	if err != nil || len(cals) != 1 {
		t.Fatalf("calendars %+v, %v", cals, err)
	}
	objs, err := cc.QueryCalendar(ctx, cals[0].Path, &caldav.CalendarQuery{
		CompRequest: caldav.CalendarCompRequest{Name: "VCALENDAR", AllProps: true, AllComps: true},
		CompFilter:  caldav.CompFilter{Name: "VCALENDAR", Comps: []caldav.CompFilter{{Name: "VEVENT"}}}})
	if err != nil || len(objs) != 1 {
		t.Fatalf("events %+v, %v", objs, err)
	}

	wc2, _ := webdav.NewClient(hc, srv.URL+CardDAVPrefix)
	cp, err := wc2.FindCurrentUserPrincipal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := carddav.NewClient(hc, srv.URL)
	ch, err := kc.FindAddressBookHomeSet(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	books, err := kc.FindAddressBooks(ctx, ch)
	if err != nil || len(books) != 1 {
		t.Fatalf("books %+v, %v", books, err)
	}
	cards, err := kc.QueryAddressBook(ctx, books[0].Path, &carddav.AddressBookQuery{DataRequest: carddav.AddressDataRequest{AllProp: true},
		PropFilters: []carddav.PropFilter{{Name: "FN", TextMatches: []carddav.TextMatch{{Text: "Postmaster"}}}}})
	if err != nil || len(cards) != 1 {
		t.Fatalf("cards %+v, %v", cards, err)
	}

	// bob cannot read alice's calendar; nobody gets in without the header.
	if _, err := caldav.NewClient(headerClient{"bob"}, srv.URL); err != nil {
		t.Fatal(err)
	}
	bc, _ := caldav.NewClient(headerClient{"bob"}, srv.URL)
	if _, err := bc.GetCalendarObject(ctx, objs[0].Path); err == nil {
		t.Error("bob read alice's event")
	}
	resp, err := http.Get(srv.URL + CalDAVPrefix)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("no header: %d, want 403", resp.StatusCode)
	}
}
