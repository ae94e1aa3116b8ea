package tenantapp

import (
	"net/url"
	"strconv"
)

// Pagination limits of every list.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	maxPage         = 1_000_000 // keeps the offset far from overflow
)

// Page is which slice of a list to return.
type Page struct {
	Number int // 1-based
	Size   int
}

// offset is the number of rows before the page.
func (p Page) offset() int { return (p.Number - 1) * p.Size }

// ParsePage reads `page` (>= 1, default 1) and `pageSize` (1..100, default
// 20) from a query string; a bad value is refused naming its parameter.
func ParsePage(q url.Values) (Page, error) {
	p := Page{Number: 1, Size: DefaultPageSize}
	bad := problems{}
	if v, ok := q["page"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxPage || len(v) > 1 {
			bad.add("page", "must be one integer between 1 and 1000000")
		}
		p.Number = n
	}
	if v, ok := q["pageSize"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > MaxPageSize || len(v) > 1 {
			bad.add("pageSize", "must be one integer between 1 and 100")
		}
		p.Size = n
	}
	if err := bad.err("invalid_query"); err != nil {
		return Page{}, err
	}
	return p, nil
}

// List is one page of a list, with the total number of items.
type List[T any] struct {
	Items    []T   `json:"items"`
	Page     int   `json:"page"`
	PageSize int   `json:"pageSize"`
	Total    int64 `json:"total"`
}

func newList[T any](p Page, total int64, items []T) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{Items: items, Page: p.Number, PageSize: p.Size, Total: total}
}
