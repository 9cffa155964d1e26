package front

import (
	"testing"
	"time"
)

func TestAcceptsCoding(t *testing.T) {
	for _, c := range []struct {
		field, coding string
		want          bool
	}{
		{"", "br", false},
		{"br", "br", true},
		{"gzip, deflate, br", "br", true},
		{"gzip, deflate, br", "gzip", true},
		{"gzip;q=0, br", "gzip", false},
		{"GZIP", "gzip", true},
		{"x-gzip", "gzip", true},
		{"br;q=0.5", "br", true},
		{"br; q=0", "br", false},
		{"br;q=0.000", "br", false},
		{"br;q=bogus", "br", false},
		{"*", "br", true},
		{"*;q=0", "br", false},
		{"*, br;q=0", "br", false},
		{"*;q=0, br", "br", true},
		{"identity", "gzip", false},
		{"brotli", "br", false},
		{"gzip", "br", false},
	} {
		if got := acceptsCoding([]byte(c.field), c.coding); got != c.want {
			t.Errorf("acceptsCoding(%q, %q) = %v, want %v", c.field, c.coding, got, c.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		field       string
		size        int64
		start, n    int64
		result      int
		description string
	}{
		{"bytes=0-9", 100, 0, 10, rangePart, "first ten"},
		{"bytes=90-", 100, 90, 10, rangePart, "to the end"},
		{"bytes=90-500", 100, 90, 10, rangePart, "last-pos past the end is the end"},
		{"bytes=-10", 100, 90, 10, rangePart, "suffix"},
		{"bytes=-500", 100, 0, 100, rangePart, "suffix longer than the file"},
		{"Bytes = 5-5", 100, 5, 1, rangePart, "unit in any case, spaces"},
		{"bytes=100-", 100, 0, 0, rangeUnsatisfiable, "starts at the end"},
		{"bytes=200-300", 100, 0, 0, rangeUnsatisfiable, "starts past the end"},
		{"bytes=-0", 100, 0, 0, rangeUnsatisfiable, "empty suffix"},
		{"bytes=0-", 0, 0, 0, rangeUnsatisfiable, "empty file"},
		{"bytes=0-1,5-6", 100, 0, 0, rangeWhole, "several ranges: the whole file"},
		{"bytes=9-1", 100, 0, 0, rangeWhole, "backwards: invalid, ignored"},
		{"bytes=x-1", 100, 0, 0, rangeWhole, "not a number"},
		{"bytes=1", 100, 0, 0, rangeWhole, "no dash"},
		{"items=0-1", 100, 0, 0, rangeWhole, "another unit"},
		{"bytes=-", 100, 0, 0, rangeWhole, "neither end"},
		{"bytes=99999999999999999999-", 100, 0, 0, rangeWhole, "overflow"},
	} {
		r, res := parseRange([]byte(c.field), c.size)
		if res != c.result || (res == rangePart && (r.start != c.start || r.n != c.n)) {
			t.Errorf("%s: parseRange(%q, %d) = %+v, %d; want start %d n %d, %d", c.description, c.field, c.size, r, res, c.start, c.n, c.result)
		}
	}
}

func TestETagMatch(t *testing.T) {
	tag := []byte(`"abc-1"`)
	for _, c := range []struct {
		lines      []string
		weak, want bool
	}{
		{[]string{`"abc-1"`}, false, true},
		{[]string{`"x", "abc-1"`}, false, true},
		{[]string{`"x"`, `"abc-1"`}, false, true},
		{[]string{`W/"abc-1"`}, true, true},
		{[]string{`W/"abc-1"`}, false, false},
		{[]string{`*`}, false, true},
		{[]string{`"abc-2"`}, true, false},
		{[]string{`abc-1`}, true, false},
		{[]string{``}, true, false},
	} {
		var lines [][]byte
		for _, l := range c.lines {
			lines = append(lines, []byte(l))
		}
		if got := etagMatch(lines, tag, c.weak); got != c.want {
			t.Errorf("etagMatch(%q, weak %v) = %v, want %v", c.lines, c.weak, got, c.want)
		}
	}
}

func TestHashedName(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{"admin/css/base.5af66c1b1797.css", true},
		{"base.5af66c1b1797.css", true},
		{"app.0123456789abcdef0123.js", true},
		{"LICENSE.5af66c1b1797", true},
		{"vendor/jquery.min.js", false},
		{"base.css", false},
		{"base.5af66c1b179.css", false},    // 11 digits
		{"base.5AF66C1B1797.css", false},   // upper case
		{"report.202401010930.pdf", false}, // digits only: a date
		{".5af66c1b1797.css", false},
		{"5af66c1b1797.css", false},
		{"a.5af66c1b1797.css.map", false},
	} {
		if got := hashedName([]byte(c.name)); got != c.want {
			t.Errorf("hashedName(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNotAfter(t *testing.T) {
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 500_000_000, time.UTC)
	for _, c := range []struct {
		field        string
		notNewer, ok bool
	}{
		{"Wed, 01 May 2024 12:00:00 GMT", true, true}, // the Last-Modified berth sent
		{"Wed, 01 May 2024 11:59:59 GMT", false, true},
		{"Thu, 02 May 2024 00:00:00 GMT", true, true},
		{"yesterday", false, false},
	} {
		notNewer, ok := notAfter(mtime, []byte(c.field))
		if notNewer != c.notNewer || ok != c.ok {
			t.Errorf("notAfter(%q) = %v, %v; want %v, %v", c.field, notNewer, ok, c.notNewer, c.ok)
		}
	}
}
