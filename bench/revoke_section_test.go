package bench

import (
	"strings"
	"testing"
)

func TestSectionPlacement(t *testing.T) {
	s := revocationSection
	text := s.begin + "\n## Ending sessions\n\nold-data\n" + s.end + "\n"
	main := "# postern benchmarks\n\n## Figures\n\ntable\n\n## Notes from the run\n\n- a note\n"
	once := s.put(main, text)
	if !strings.HasPrefix(once, main) || !strings.HasSuffix(once, "- a note\n\n"+text) {
		t.Fatalf("first placement:\n%s", once)
	}
	newer := strings.Replace(text, "old-data", "new-data", 1)
	twice := s.put(once, newer)
	if strings.Count(twice, s.begin) != 1 || !strings.Contains(twice, "new-data") || strings.Contains(twice, "old-data") {
		t.Fatalf("replacement:\n%s", twice)
	}
	if kept := s.of(twice); kept != newer {
		t.Fatalf("kept %q, want %q", kept, newer)
	}
	// A section in the middle stays where it is, and what follows it is kept.
	mid := s.put("# report\n\n"+text+"\n"+davSection.begin+"\ndav\n"+davSection.end+"\n", newer)
	if want := "# report\n\n" + newer + "\n" + davSection.begin + "\ndav\n" + davSection.end + "\n"; mid != want {
		t.Fatalf("in the middle:\n%q\nwant\n%q", mid, want)
	}
	if s.of(main) != "" || davSection.of(twice) != "" {
		t.Fatal("found a section that is not there")
	}
}
