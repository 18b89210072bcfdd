package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
)

// runCluster is `authctl dev --cluster`: the local cluster until Ctrl-C or
// SIGTERM, then every child stopped in order.
func runCluster(cmd *cobra.Command, cfg config.Config, binDir string) error {
	log := app.NewLogger(cfg.LogLevel, cfg.LogFormat)
	// The effective configuration says what the cluster uses: its own
	// addresses unless set, the stream and buckets on three replicas.
	if !config.Explicit("AUTH_WEB_ADDR") {
		cfg.WebAddr = fmt.Sprintf("127.0.0.1:%d", app.MakeClusterPorts.Web)
	}
	if !config.Explicit("AUTH_HTTP_ADDR") {
		cfg.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", app.MakeClusterPorts.Page)
	}
	if !config.Explicit("AUTH_PUBLIC_URL") {
		cfg.PublicURL = "http://" + cfg.WebAddr
	}
	cfg.StreamReplicas = 3
	// No dev clock: the NATS users of deploy/nats/users.conf refuse it to
	// everyone (docs/dev.md, "The cluster topology").
	if cfg.DevClock && config.Explicit("AUTH_DEV_CLOCK") {
		log.Warn("AUTH_DEV_CLOCK is ignored: the local cluster runs the production NATS users, which refuse the dev clock; make run has it")
	}
	cfg.DevClock = false
	cfg.Log(log, config.Dev)
	if binDir == "" {
		binDir = defaultBinDir()
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Démarrage de la grappe locale (binaires de %s)…\n", binDir)
	c, err := app.StartCluster(ctx, cfg, app.ClusterOptions{BinDir: binDir, Ports: app.MakeClusterPorts, Output: out}, log)
	if err != nil {
		return err
	}
	stopCluster := func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c.Stop(stopCtx)
	}
	created, err := c.EnsureDemoAccount(ctx)
	if err != nil {
		stopCluster()
		return err
	}
	truth, err := c.DemoPasswordTruth(ctx)
	if err != nil {
		stopCluster()
		return err
	}
	var banner bytes.Buffer
	writeClusterBanner(&banner, c, truth, created)
	_, _ = c.Write(banner.Bytes()) // whole, between the children's lines
	<-ctx.Done()
	stop() // a second Ctrl-C ends authctl at once (the children get SIGTERM from Linux)
	fmt.Fprintln(c, "Arrêt de la grappe…")
	stopCluster()
	return nil
}

// defaultBinDir is the directory of this authctl when the other binaries
// are beside it (make cluster runs bin/authctl), else ./bin.
func defaultBinDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(dir, "nats-server")); err == nil {
			return dir
		}
	}
	return "bin"
}

// writeClusterBanner says where everything is and how to log in.
func writeClusterBanner(out io.Writer, c *app.Cluster, truth app.DemoTruth, created bool) {
	fmt.Fprintf(out, "\nameli-auth est prêt (grappe locale : 3 nœuds NATS, stream R3, commands x2, projector x2, notifier, web).\n")
	fmt.Fprintf(out, "  Site web      %s\n", c.WebURL)
	fmt.Fprintf(out, "  NATS          %s\n", c.NATSURL)
	fmt.Fprintf(out, "  Postgres      %s\n", config.Redact(c.DB.URL))
	if c.Catcher != nil {
		fmt.Fprintf(out, "  Mails reçus   %s/mails/\n", c.PageURL)
	}
	fmt.Fprintf(out, "  Processus     %s (pages ops de chacun ; adresses dans %s)\n", c.PageURL, app.ClusterStatePath(c.Config.VarDir))
	fmt.Fprintf(out, "  Comptes NATS  ceux de deploy/nats/users.conf ; mots de passe dans %s/\n",
		filepath.Dir(app.ClusterNATSPasswordFile(c.Config.VarDir, "admin")))
	writeDemoLine(out, truth, created, "cette grappe")
	fmt.Fprintf(out, "\nSe connecter : %s/connexion avec ce NIR et ce mot de passe ; le code de sécurité\n", c.WebURL)
	fmt.Fprintf(out, "s'affiche ici (ligne du mail) et dans les mails reçus. Ou, dans un autre terminal :\n")
	fmt.Fprintf(out, "  bin/authctl login        (authctl trouve la grappe par %s)\n", app.ClusterStatePath(c.Config.VarDir))
	fmt.Fprintf(out, "Pannes : les boutons de la page des processus, ou curl -X POST %s/processes/nats-2/kill (puis …/start).\n", c.PageURL)
	fmt.Fprintf(out, "Ctrl-C pour arrêter.\n\n")
}
