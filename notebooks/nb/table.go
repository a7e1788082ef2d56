package nb

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A Table holds figures to print as a short table: one row per item, a
// column per quantity, numbers right-aligned and never broken over lines.
// [Show] displays it as a table (with its text form beside, for the text
// front ends and tests); String gives the text form.
type Table struct {
	title  string
	header []string
	rows   [][]string
	num    []bool // column i holds numbers
}

// NewTable starts a table with the given column headings.
func NewTable(header ...string) *Table {
	return &Table{header: header, num: make([]bool, len(header))}
}

// Title sets the line above the table.
func (t *Table) Title(s string) *Table { t.title = s; return t }

// Row appends a row. Numbers are written with 4 significant digits
// (integers in full), strings as they are, anything else with %v; a
// column whose cells are all numbers is right-aligned.
func (t *Table) Row(cells ...any) *Table {
	row := make([]string, max(len(cells), len(t.header)))
	for len(t.num) < len(row) {
		t.num = append(t.num, true)
	}
	first := len(t.rows) == 0
	for i := range row {
		if i >= len(cells) {
			continue
		}
		s, isNum := cell(cells[i])
		row[i] = s
		if first {
			t.num[i] = isNum
		} else {
			t.num[i] = t.num[i] && isNum
		}
	}
	t.rows = append(t.rows, row)
	return t
}

func cell(v any) (string, bool) {
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float32:
		return formatFloat(float64(x)), true
	case float64:
		return formatFloat(x), true
	case string:
		return x, false
	case fmt.Stringer:
		return x.String(), false
	default:
		return fmt.Sprint(v), false
	}
}

// formatFloat writes v with 4 significant digits, without an exponent for
// magnitudes from 0.0001 to 10^7.
func formatFloat(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case v == 0:
		return "0"
	case a < 1e-4 || a >= 1e7:
		return strconv.FormatFloat(v, 'e', 3, 64)
	}
	digits := max(0, 3-int(math.Floor(math.Log10(a))))
	return strconv.FormatFloat(v, 'f', digits, 64)
}

// String returns the table as aligned text, title first.
func (t *Table) String() string {
	cols := len(t.header)
	for _, r := range t.rows {
		cols = max(cols, len(r))
	}
	width := make([]int, cols)
	for i, h := range t.header {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	if t.title != "" {
		b.WriteString(t.title + "\n")
	}
	line := func(cells []string, pad func(i int, s string) string) {
		parts := make([]string, cols)
		for i := range parts {
			s := ""
			if i < len(cells) {
				s = cells[i]
			}
			parts[i] = pad(i, s)
		}
		b.WriteString(strings.TrimRight(strings.Join(parts, "  "), " ") + "\n")
	}
	left := func(i int, s string) string { return s + strings.Repeat(" ", width[i]-utf8.RuneCountInString(s)) }
	if len(t.header) > 0 {
		line(t.header, left)
	}
	for _, r := range t.rows {
		line(r, func(i int, s string) string {
			if i < len(t.num) && t.num[i] {
				return strings.Repeat(" ", width[i]-utf8.RuneCountInString(s)) + s
			}
			return left(i, s)
		})
	}
	return b.String()
}

var tableTmpl = template.Must(template.New("table").Parse(`<div class="convlens-table">
{{- if .Title}}<p style="margin:0.2em 0"><b>{{.Title}}</b></p>{{end -}}
<table style="border-collapse:collapse;font-variant-numeric:tabular-nums">
{{- if .Header}}<thead><tr>{{range .Header}}<th style="text-align:left;padding:2px 10px;white-space:nowrap">{{.}}</th>{{end}}</tr></thead>{{end -}}
<tbody>{{range .Rows}}<tr>{{range .}}<td style="padding:2px 10px;white-space:nowrap;text-align:{{.Align}}">{{.Text}}</td>{{end}}</tr>{{end}}</tbody>
</table></div>`))

// html returns the table as HTML.
func (t *Table) html() string {
	type td struct{ Text, Align string }
	var rows [][]td
	for _, r := range t.rows {
		var row []td
		for i, c := range r {
			align := "left"
			if i < len(t.num) && t.num[i] {
				align = "right"
			}
			row = append(row, td{c, align})
		}
		rows = append(rows, row)
	}
	var b strings.Builder
	if err := tableTmpl.Execute(&b, struct {
		Title  string
		Header []string
		Rows   [][]td
	}{t.title, t.header, rows}); err != nil {
		stop(err)
	}
	return b.String()
}
