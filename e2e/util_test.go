package e2e

import (
	"fmt"
	"net/http"
)

func fmtSscan(s string, v *int) (int, error) { return fmt.Sscan(s, v) }

func httpGet(u string) (int, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
