package cli

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
)

func newSitePurgeCmd(o *siteOpts) *cobra.Command {
	var page, tag string
	cmd := &cobra.Command{
		Use:   "purge DOMAIN [--page URL | --tag TAG]",
		Short: "Purge a site's pages from the edge's page cache",
		Long: `Remove cached pages of a site from the edge's page cache, so that the next
visitor gets them fresh from WordPress.

  --page URL  one page (every variant of its query string); a path such as
              /hello-world/ is resolved against the site's URL
  --tag TAG   every page carrying a cache tag; WordPress tags its pages with
              home (front and posts page), post-<ID> (the post's page and
              every listing that shows it), term-<ID> (a category, tag or
              taxonomy archive), archive (any archive) and feed (any feed)
  neither     every page of the site

WordPress purges by itself when content changes (the aipress-cache plugin);
use this after changes it cannot see, such as edits in the database.
(The page flag is --page because --url names the API, as for every site
command.)

Prints how many cached objects were removed (0 when nothing was cached).`,
		Example: `  aipress site purge blog.localhost
  aipress site purge blog.localhost --tag home
  aipress site purge blog.localhost --page /hello-world/
  aipress site purge blog.localhost --page http://blog.localhost:8080/about/ -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if page != "" && tag != "" {
				return errors.New("give --page or --tag, not both")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			req := apiclient.PurgeRequest{URL: page, Tag: tag}
			if page != "" {
				if u, err := url.Parse(page); err != nil || u.Host == "" {
					// A path: resolve it against the site's URL.
					s, err := c.GetSite(ctx, args[0])
					if err != nil {
						return err
					}
					base := s.Status.URL
					if base == "" {
						base = "http://" + s.Spec.Domain
					}
					if req.URL, err = api.ResolvePurgeURL(base, s.Spec.Domain, page); err != nil {
						return err
					}
				}
			}
			resp, err := c.PurgeSite(ctx, args[0], req)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, resp)
			}
			what := "all pages"
			switch {
			case req.URL != "":
				what = req.URL
			case tag != "":
				what = "tag " + tag
			}
			_, err = fmt.Fprintf(w, "purged %s of %s: %d cached %s removed\n", what, args[0], resp.Purged, plural(resp.Purged, "object", "objects"))
			return err
		},
	}
	cmd.Flags().StringVar(&page, "page", "", "purge one page: a URL on the site, or a path resolved against the site's URL")
	cmd.Flags().StringVar(&tag, "tag", "", "purge every page with this cache tag (home, feed, archive, post-<ID>, term-<ID>)")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
