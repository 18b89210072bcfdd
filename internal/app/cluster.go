package app

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/devpg"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/natsusers"
)

// The local cluster (`make cluster`, `authctl dev --cluster`) runs the
// production topology as processes of this machine: three nats-server
// nodes clustered over routes on 127.0.0.1 with JetStream (the events
// stream and every bucket with 3 replicas, sync always, as
// deploy/nats/nats-server.conf), two commands services, two projectors
// (one leads, one stands by), the notifier and the web front-end, each the
// real binary in its own process, in production mode, each connected as
// its NATS user of deploy/nats/users.conf (which every node includes, with
// passwords generated once under <var>/cluster/nats-passwords/), and
// without the dev clock, which those users refuse to everyone. authctl
// itself keeps the mail catcher, the Postgres database, the demo account
// and a page listing the processes. Fault tests kill and restart its
// processes (ClusterProcess).

// ClusterBinaries are the programs StartCluster runs, from
// ClusterOptions.BinDir (`make cluster` builds them into bin/).
var ClusterBinaries = []string{"nats-server", "commands", "projector", "notifier", "web"}

// ClusterNATSUsers are the NATS users of deploy/nats/users.conf, each
// with its password generated once into
// <var>/cluster/nats-passwords/<user> (ClusterNATSPasswordFile).
var ClusterNATSUsers = []string{"commands", "projector", "notifier", "frontend", "backoffice", "admin"}

// clusterNATSName is the cluster's name, deploy/nats/nats-server.conf's.
const clusterNATSName = "auth"

// clusterNodeTag is the placement tag (server_tags) of every node, as
// docker-compose.yml gives its three nodes: one group of three, where
// AUTH_PARTITION_PLACEMENT=group:a places every partition (docs/scale.md,
// "Placement").
const clusterNodeTag = "group:a"

// clusterReplicas is the replicas of the stream and buckets on the three
// nodes (AUTH_STREAM_REPLICAS=3 in production).
const clusterReplicas = 3

// ClusterPorts are the ports of the local cluster, all on 127.0.0.1. A
// zero port is a free one chosen at start; a port taken at start is
// replaced by a free one, said in the log and in <var>/cluster.json. Each
// process keeps its ports across its restarts.
type ClusterPorts struct {
	NATSClient  [3]int // nats-1..3: the components' connections
	NATSRoute   [3]int // the cluster routes
	NATSMonitor [3]int // nats-server's monitoring: /healthz, /jsz, /routez
	Commands    [2]int // ops pages of commands-1, commands-2
	Projector   [2]int // ops pages of projector-1, projector-2
	Notifier    int    // ops page of the notifier
	WebOps      int    // ops page of the web front-end
	Web         int    // the web front-end (AUTH_WEB_ADDR when set)
	Page        int    // authctl's page: processes and mails (AUTH_HTTP_ADDR when set)
}

// MakeClusterPorts are `make cluster`'s ports: beside dev mode's (4222,
// 8080, 8025), so that both can run at once.
var MakeClusterPorts = ClusterPorts{
	NATSClient:  [3]int{4421, 4422, 4423},
	NATSRoute:   [3]int{6421, 6422, 6423},
	NATSMonitor: [3]int{8421, 8422, 8423},
	Commands:    [2]int{9101, 9102},
	Projector:   [2]int{9111, 9112},
	Notifier:    9121,
	WebOps:      9131,
	Web:         8090,
	Page:        8095,
}

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// BinDir holds ClusterBinaries; nats-server must be the version go.mod
	// pins (`go build -o bin/ github.com/nats-io/nats-server/v2`), else a
	// warning.
	BinDir string
	// Ports; the zero value takes free ports (tests).
	Ports ClusterPorts
	// Output receives the children's lines, each prefixed with its name,
	// and the mail catcher's lines (each mail's subject and code). nil:
	// discarded.
	Output io.Writer
	// ReadyTimeout bounds each wait for a process to be ready; default
	// 90 s (a JetStream meta leader election takes up to 10 s, and a node
	// catching up on a large store longer).
	ReadyTimeout time.Duration
}

// Cluster is a running local cluster.
type Cluster struct {
	Config  config.Config // authctl's configuration; VarDir/cluster holds the cluster's data
	DB      *devpg.Database
	Catcher *catcher.Catcher // nil when AUTH_SMTP_ADDR sends mail elsewhere
	NATSURL string           // the three nodes' client URLs, comma-separated (AUTH_NATS_URL of every child)
	WebURL  string           // the web front-end
	PageURL string           // authctl's page: the processes, /mails/
	Conn    *nats.Conn       // authctl's own connection, as the NATS user admin (reads the streams)
	JS      jetstream.JetStream

	procs        []*ClusterProcess
	spawner      *spawner
	outMu        sync.Mutex
	out          io.Writer
	readyTimeout time.Duration
	page         *http.Server
	log          *slog.Logger
	stateWritten bool
	stopOnce     sync.Once
	lock         *os.File // <var>/cluster/lock, held while it runs
}

// ClusterDir is where the cluster keeps its data under the var dir: each
// node's configuration (nats-N.conf) and store (nats-N/), the NATS users
// (users.conf) and their passwords (nats-passwords/), the demo account
// (demo.json), and the private Postgres if one is needed (pg/).
func ClusterDir(varDir string) string { return filepath.Join(varDir, "cluster") }

// ClusterNATSPasswordFile is where the local cluster on varDir keeps the
// password of the NATS user (one of ClusterNATSUsers): letters and digits,
// mode 0600, generated at the first start and kept.
func ClusterNATSPasswordFile(varDir, user string) string {
	return filepath.Join(ClusterDir(varDir), "nats-passwords", user)
}

// StartCluster starts the local cluster and returns once every process is
// ready: the three nodes (a JetStream meta leader that knows them all),
// commands-1 (which creates the stream and buckets with 3 replicas), then
// the others. cfg is authctl dev's configuration (LoadDev): its var dir,
// database, prefix, policy, log level, SMTP, secret key, web and page
// addresses; its prefix must be the default one (deploy/nats/users.conf's
// subjects are under it). On error, what was started is stopped.
func StartCluster(ctx context.Context, cfg config.Config, opts ClusterOptions, log *slog.Logger) (c *Cluster, err error) {
	if cfg.NATSURL != "" {
		return nil, errors.New("the local cluster runs its own nats-servers: unset AUTH_NATS_URL")
	}
	if contract.Subjects(cfg.Prefix).Prefix() != contract.DefaultPrefix {
		return nil, fmt.Errorf("the local cluster runs deploy/nats/users.conf, whose subjects are under %q: unset AUTH_SUBJECT_PREFIX (it is %q)",
			contract.DefaultPrefix, cfg.Prefix)
	}
	// The production topology, without the dev clock: the users of
	// deploy/nats/users.conf refuse its subject and bucket to everyone.
	cfg.Mode, cfg.DevClock, cfg.StreamReplicas = config.ModeDev, false, clusterReplicas
	if cfg.VarDir, err = filepath.Abs(cfg.VarDir); err != nil {
		return nil, err
	}
	bins, err := clusterBinaries(opts.BinDir, log)
	if err != nil {
		return nil, err
	}
	if opts.Output == nil {
		opts.Output = io.Discard
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	c = &Cluster{Config: cfg, out: opts.Output, readyTimeout: opts.ReadyTimeout, spawner: newSpawner(), log: log}
	defer func() {
		if err != nil {
			c.Stop(context.Background())
			c = nil
		}
	}()
	dir := ClusterDir(cfg.VarDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, err
	}
	// Two clusters on one var dir would share the nodes' stores.
	if c.lock, err = lockDir(dir); err != nil {
		return c, err
	}
	// The key is dev mode's (created at the first start of either): the
	// commands and the notifier read it from its file.
	if _, err := cfg.Keys(); err != nil {
		return c, err
	}
	if c.DB, err = devpg.EnsureNamed(ctx, cfg.DatabaseURL, dir, devpg.ClusterDatabase, log); err != nil {
		return c, err
	}
	c.Config.DatabaseURL = c.DB.URL
	ports, err := resolvePorts(opts.Ports, cfg, log)
	if err != nil {
		return c, err
	}
	smtpAddr, smtpTLS := cfg.SMTPAddr, cfg.SMTPTLS
	if smtpAddr == "" {
		if c.Catcher, err = StartMailCatcher(&lockedWriter{mu: &c.outMu, w: opts.Output}, log); err != nil {
			return c, err
		}
		smtpAddr, smtpTLS = c.Catcher.Addr(), "none"
	}
	c.WebURL = "http://" + hostPort(ports.Web)
	publicURL := c.WebURL
	if config.Explicit("AUTH_PUBLIC_URL") {
		publicURL = cfg.PublicURL
	}
	var clientURLs []string
	for i := range 3 {
		clientURLs = append(clientURLs, "nats://"+hostPort(ports.NATSClient[i]))
	}
	c.NATSURL = strings.Join(clientURLs, ",")

	// The NATS users: deploy/nats/users.conf, or the file of
	// AUTH_PARTITIONS (natsusers, the files of deploy/nats), written again
	// at every start (the one of this build), included by every node; their
	// passwords, kept from the first start, in the nodes' environment as in
	// docker-compose.yml.
	passwords, err := clusterNATSPasswords(cfg.VarDir)
	if err != nil {
		return c, err
	}
	users, err := natsusers.Conf(cfg.Layout())
	if err != nil {
		return c, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.conf"), users, 0o600); err != nil {
		return c, fmt.Errorf("write the NATS users: %w", err)
	}
	var nodeEnv []string
	for _, u := range ClusterNATSUsers {
		nodeEnv = append(nodeEnv, "NATS_PASSWORD_"+strings.ToUpper(u)+"="+passwords[u])
	}

	// The nodes: a configuration file each, rewritten at every start.
	var routes []string
	for i := range 3 {
		routes = append(routes, "nats-route://"+hostPort(ports.NATSRoute[i]))
	}
	for i := range 3 {
		name := fmt.Sprintf("nats-%d", i+1)
		conf := filepath.Join(dir, name+".conf")
		node := natsNode{Name: name, Client: hostPort(ports.NATSClient[i]), Route: hostPort(ports.NATSRoute[i]),
			Monitor: hostPort(ports.NATSMonitor[i]), StoreDir: filepath.Join(dir, name), Routes: routes}
		if err := os.WriteFile(conf, []byte(node.config()), 0o600); err != nil {
			return c, fmt.Errorf("write %s: %w", conf, err)
		}
		monitor := "http://" + node.Monitor
		c.addProcess(name, bins["nats-server"], []string{"-c", conf}, config.ChildEnv(nodeEnv...), monitor+"/healthz", monitor)
	}

	// The components: production mode, each told everything it needs.
	common := []string{
		"AUTH_MODE=" + config.ModeProduction, "AUTH_NATS_URL=" + c.NATSURL, "AUTH_SUBJECT_PREFIX=" + cfg.Prefix,
		"AUTH_LOG_LEVEL=" + cfg.LogLevel, "AUTH_STREAM_REPLICAS=" + strconv.Itoa(clusterReplicas),
		config.EnvPartitions + "=" + strconv.Itoa(max(cfg.Partitions, 1)),
	}
	key := "AUTH_SECRET_KEY_FILE=" + filepath.Join(cfg.VarDir, "secret.key")
	if cfg.SecretKey != "" {
		key = "AUTH_SECRET_KEY=" + cfg.SecretKey
	}
	// The keys it replaced, for a rotation's rehearsal (docs/keys.md).
	keys := []string{key}
	if cfg.SecretKeyPrev != "" {
		keys = append(keys, config.EnvSecretKeyPrevious+"="+cfg.SecretKeyPrev)
	}
	// Each connects as its user (the web front-end as frontend), its
	// password read from its file.
	env := func(opsPort int, user string, more ...string) []string {
		return config.ChildEnv(append(append(append([]string{}, common...), "AUTH_HTTP_ADDR="+hostPort(opsPort),
			config.EnvNATSUser+"="+user, config.EnvNATSPassword+"_FILE="+ClusterNATSPasswordFile(cfg.VarDir, user)), more...)...)
	}
	component := func(name, bin string, opsPort int, more ...string) {
		user := bin
		if bin == "web" {
			user = "frontend"
		}
		ops := "http://" + hostPort(opsPort)
		c.addProcess(name, bins[bin], nil, env(opsPort, user, more...), ops+"/readyz", ops)
	}
	for i := range 2 {
		// The three nodes are the one group clusterNodeTag names: a
		// placement other than that tag finds no nodes.
		component(fmt.Sprintf("commands-%d", i+1), "commands", ports.Commands[i], append(append([]string{}, keys...), "AUTH_POLICY="+cfg.PolicyName,
			config.EnvPlacement+"="+cfg.Placement.String())...)
	}
	projEnv := []string{"AUTH_DATABASE_URL=" + c.DB.URL}
	if cfg.ProjectorBatch > 0 {
		projEnv = append(projEnv, "AUTH_PROJECTOR_BATCH="+strconv.Itoa(cfg.ProjectorBatch))
	}
	if cfg.GOGC != "" {
		projEnv = append(projEnv, "GOGC="+cfg.GOGC)
	}
	if cfg.GOMemLimit != "" {
		projEnv = append(projEnv, "GOMEMLIMIT="+cfg.GOMemLimit)
	}
	for i := range 2 {
		component(fmt.Sprintf("projector-%d", i+1), "projector", ports.Projector[i], projEnv...)
	}
	notEnv := append(append([]string{}, keys...), "AUTH_DATABASE_URL="+c.DB.URL, "AUTH_SMTP_ADDR="+smtpAddr,
		"AUTH_SMTP_FROM="+cfg.SMTPFrom, "AUTH_PUBLIC_URL="+publicURL)
	if smtpTLS != "" {
		notEnv = append(notEnv, "AUTH_SMTP_TLS="+smtpTLS)
	}
	if cfg.SMTPUser != "" {
		notEnv = append(notEnv, "AUTH_SMTP_USER="+cfg.SMTPUser)
	}
	if cfg.SMTPPassword != "" {
		notEnv = append(notEnv, "AUTH_SMTP_PASSWORD="+cfg.SMTPPassword)
	}
	component("notifier", "notifier", ports.Notifier, notEnv...)
	component("web", "web", ports.WebOps, "AUTH_WEB_ADDR="+hostPort(ports.Web))

	// The page first: it shows the processes as they come up.
	if err := c.servePage(hostPort(ports.Page)); err != nil {
		return c, err
	}
	if err := c.startAll(ctx); err != nil {
		return c, err
	}
	if c.Conn, err = c.connectAs("admin", "authctl-cluster"); err != nil {
		return c, err
	}
	if c.JS, err = jetstream.New(c.Conn); err != nil {
		return c, err
	}
	if err := writePrivateJSON(ClusterStatePath(cfg.VarDir), c.State()); err != nil {
		return c, fmt.Errorf("write %s: %w", ClusterStatePath(cfg.VarDir), err)
	}
	c.stateWritten = true
	return c, nil
}

// startAll starts the nodes, waits for the cluster, then commands-1 (the
// stream and buckets are created once, by one process), then the others
// at once.
func (c *Cluster) startAll(ctx context.Context) error {
	group := func(names ...string) error {
		for _, n := range names {
			if err := c.Process(n).spawn(); err != nil {
				return err
			}
		}
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Go(func() { errs[i] = c.Process(n).WaitReady(ctx) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if err := group("nats-1", "nats-2", "nats-3"); err != nil {
		return err
	}
	if err := c.waitJetStream(ctx); err != nil {
		return err
	}
	if err := group("commands-1"); err != nil {
		return err
	}
	if err := group("commands-2", "projector-1", "notifier", "web", "projector-2"); err != nil {
		return err
	}
	// The buckets, the dead-letter stream and the consumers the components
	// just created elect their leaders: the first commands would otherwise
	// be answered "unavailable".
	return c.waitJetStream(ctx)
}

// waitJetStream waits until the JetStream meta leader knows the three
// nodes current (before that, creating a stream with 3 replicas fails with
// "insufficient resources"; only the leader lists its peers in /jsz), and
// every stream and consumer the nodes hold has a leader: on a start with
// kept stores the nodes answer /healthz before their streams have elected
// one, and a component opening the stream then waits for an answer that
// never comes.
func (c *Cluster) waitJetStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		last := c.jetStreamReady(ctx, client)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the JetStream cluster is not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond): // polling, until ctx's deadline
		}
	}
}

// jsz is what waitJetStream reads of a node's /jsz.
type jsz struct {
	Meta *struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Current bool `json:"current"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
	Accounts []struct {
		Streams []struct {
			Name    string `json:"name"`
			Cluster *struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
			Consumers []struct {
				Name    string `json:"name"`
				Cluster *struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			} `json:"consumer_detail"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

func (c *Cluster) jetStreamReady(ctx context.Context, client *http.Client) error {
	metaOK := false
	for _, p := range c.procs[:3] {
		var z jsz
		if err := getJSON(ctx, client, p.opsURL+"/jsz?accounts=true&streams=true&consumers=true", &z); err != nil {
			return err
		}
		if z.Meta != nil && z.Meta.Leader != "" && len(z.Meta.Replicas) == 2 && z.Meta.Replicas[0].Current && z.Meta.Replicas[1].Current {
			metaOK = true
		}
		for _, a := range z.Accounts {
			for _, st := range a.Streams {
				if st.Cluster == nil || st.Cluster.Leader == "" {
					return fmt.Errorf("%s: stream %s has no leader yet", p.name, st.Name)
				}
				for _, co := range st.Consumers {
					if co.Cluster == nil || co.Cluster.Leader == "" {
						return fmt.Errorf("%s: consumer %s > %s has no leader yet", p.name, st.Name, co.Name)
					}
				}
			}
		}
	}
	if !metaOK {
		return errors.New("no JetStream meta leader with the two other nodes current")
	}
	return nil
}

// getJSON decodes the JSON of a 200 answer to a GET of url into v.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	res, err := get(ctx, client, url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

// get is a GET of url under ctx; the caller closes the body.
func get(ctx context.Context, client *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return client.Do(req)
}

func (c *Cluster) addProcess(name, bin string, args, env []string, readyURL, opsURL string) {
	poll := 50 * time.Millisecond
	if strings.HasPrefix(name, "nats-") {
		poll = 250 * time.Millisecond
	}
	c.procs = append(c.procs, &ClusterProcess{name: name, bin: bin, args: args, env: env, readyURL: readyURL, opsURL: opsURL, pollEvery: poll,
		c: c, out: &prefixWriter{prefix: fmt.Sprintf("%-11s | ", name), outMu: &c.outMu, out: c.out}})
}

// Write writes authctl's own lines to the cluster's output, never in the
// middle of a child's line.
func (c *Cluster) Write(b []byte) (int, error) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.out.Write(b)
}

// Process is the process of that name (nats-1…3, commands-1…2,
// projector-1…2, notifier, web); nil for another name.
func (c *Cluster) Process(name string) *ClusterProcess {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// Processes are every process, nodes first.
func (c *Cluster) Processes() []*ClusterProcess { return c.procs }

// Stop stops everything: the web front-end, then the consumers, then the
// commands services, then the nodes, each by SIGTERM (killed after 30 s),
// then the mail catcher, the page and the private Postgres.
func (c *Cluster) Stop(ctx context.Context) {
	c.stopOnce.Do(func() { c.stop(ctx) })
}

func (c *Cluster) stop(ctx context.Context) {
	if c.stateWritten {
		_ = os.Remove(ClusterStatePath(c.Config.VarDir))
	}
	// The page first: a start asked there must not race the stop.
	if c.page != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = c.page.Shutdown(sctx)
		cancel()
	}
	if c.Conn != nil {
		c.Conn.Close()
	}
	for _, group := range [][]string{{"web"}, {"notifier", "projector-1", "projector-2"}, {"commands-1", "commands-2"}, {"nats-1", "nats-2", "nats-3"}} {
		var wg sync.WaitGroup
		for _, name := range group {
			if p := c.Process(name); p != nil {
				wg.Go(func() {
					sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					if err := p.Stop(sctx); err != nil {
						c.log.Warn("stop", "process", name, "err", err)
					}
				})
			}
		}
		wg.Wait()
	}
	c.spawner.close()
	if c.Catcher != nil {
		_ = c.Catcher.Close()
	}
	if c.DB != nil && c.DB.Private != nil {
		if err := c.DB.Private.Stop(); err != nil {
			c.log.Warn("stop private Postgres", "err", err)
		}
	}
	if c.lock != nil {
		_ = c.lock.Close() // releases the lock
	}
}

// lockDir takes dir's lock file (flock, released when the file is closed
// or the process ends), or says who holds it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		holder, _ := os.ReadFile(path)
		return nil, fmt.Errorf("another local cluster runs on %s (authctl pid %s): stop it first, or give this one another AUTH_VAR_DIR", dir, strings.TrimSpace(string(holder)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// EnsureDemoAccount registers the demo account unless it exists (over
// NATS, as the back-office does), and says whether it was created now;
// the cluster keeps it in <var>/cluster/demo.json.
func (c *Cluster) EnsureDemoAccount(ctx context.Context) (created bool, err error) {
	subjects := contract.Subjects(c.Config.Prefix)
	// A back-office command: as the back-office's NATS user.
	nc, err := c.connectAs("backoffice", "authctl-cluster-backoffice")
	if err != nil {
		return false, err
	}
	defer nc.Close()
	return registerDemo(ctx, ClusterDir(c.Config.VarDir), func(ctx context.Context, subject string, body []byte) ([]byte, error) {
		// An election in progress answers nothing, or "unavailable", for a
		// few seconds: the request is sent again with its request id, as
		// a front-end does.
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for {
			rctx, cancelReq := context.WithTimeout(ctx, 10*time.Second)
			m, err := nc.RequestWithContext(rctx, subjects.Command(subject), body)
			cancelReq()
			var rep struct {
				Error *struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err == nil && (json.Unmarshal(m.Data, &rep) != nil || rep.Error == nil || rep.Error.Code != "unavailable") {
				return m.Data, nil
			}
			select {
			case <-ctx.Done():
				if err == nil {
					return m.Data, nil
				}
				return nil, err
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// DemoPasswordTruth is Dev.DemoPasswordTruth for the cluster's demo
// account, read from the stream by authctl's own connection.
func (c *Cluster) DemoPasswordTruth(ctx context.Context) (DemoTruth, error) {
	store, err := eventstore.OpenPartitioned(ctx, c.JS, eventstore.JetStreamConfig{Prefix: c.Config.Prefix, Replicas: clusterReplicas, Partitions: c.Config.Partitions})
	if err != nil {
		return DemoTruth{}, err
	}
	return demoPasswordTruth(ctx, c.Config, ClusterDir(c.Config.VarDir), store)
}

// connectAs connects to the cluster as the NATS user (one of
// ClusterNATSUsers) with its password and its own inbox prefix
// (_INBOX.<user>), as the components do; more options are added after.
func (c *Cluster) connectAs(user, name string, more ...nats.Option) (*nats.Conn, error) {
	pw, err := readClusterNATSPassword(ClusterNATSPasswordFile(c.Config.VarDir, user))
	if err != nil {
		return nil, err
	}
	opts, err := NATSOptions(config.NATSClient{User: user, Password: pw}, name, c.log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.NATSURL, append(opts, more...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster as %s: %w", user, err)
	}
	return nc, nil
}

// clusterNATSPasswords reads the password of each of ClusterNATSUsers from
// its file, generating the missing ones (and the directory, mode 0700).
func clusterNATSPasswords(varDir string) (map[string]string, error) {
	if err := os.MkdirAll(filepath.Dir(ClusterNATSPasswordFile(varDir, "x")), 0o700); err != nil {
		return nil, err
	}
	pws := map[string]string{}
	for _, u := range ClusterNATSUsers {
		path := ClusterNATSPasswordFile(varDir, u)
		pw, err := readClusterNATSPassword(path)
		if errors.Is(err, os.ErrNotExist) {
			pw = newClusterNATSPassword()
			// O_EXCL: the cluster's lock is held, yet never overwrite one.
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return nil, fmt.Errorf("the NATS password of %s: %w", u, err)
			}
			_, err = f.WriteString(pw + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("write %s: %w", path, err)
			}
		} else if err != nil {
			return nil, err
		}
		pws[u] = pw
	}
	return pws, nil
}

// readClusterNATSPassword reads a password file of the cluster, and
// refuses one that deploy/nats/users.conf could not take as it is (a
// letter then letters and digits: nats-server reads the value of
// $NATS_PASSWORD_<USER> as a number, a boolean or a size when it looks
// like one). Errors wrap os.ErrNotExist for a missing file, and never
// carry the password.
func readClusterNATSPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("the local cluster's NATS password: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if len(pw) < 16 || !isLetter(pw[0]) || strings.IndexFunc(pw, func(r rune) bool { return r > 127 || !isLetter(byte(r)) && !isDigit(byte(r)) }) >= 0 {
		return "", fmt.Errorf("%s: not a password of the local cluster (at least 16 letters and digits, a letter first): delete it, the next start makes another", path)
	}
	return pw, nil
}

// newClusterNATSPassword is 32 random letters and digits, a letter first
// (about 190 bits).
func newClusterNATSPassword() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	const alnum = letters + "0123456789"
	b := make([]byte, 32)
	for i := range b {
		set := alnum
		if i == 0 {
			set = letters
		}
		b[i] = set[randIntn(len(set))]
	}
	return string(b)
}

// randIntn is a uniform random number in [0, n), from crypto/rand.
func randIntn(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux (Go 1.24 and later)
	}
	return int(v.Int64())
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// ClusterState is what a running local cluster tells the other authctl
// commands (its DevState: NATS URLs, database, prefix) and people
// (every process's addresses), in <var>/cluster.json (mode 0600), written
// once it is ready and removed when it stops.
type ClusterState struct {
	DevState
	WebURL    string                `json:"web_url"`
	MailsURL  string                `json:"mails_url,omitempty"`
	Processes []ClusterProcessState `json:"processes"`
}

// ClusterProcessState is one process of a ClusterState.
type ClusterProcessState struct {
	Name string `json:"name"`
	// OpsURL: the ops page (/healthz, /readyz, /metrics), or a node's
	// monitoring (/healthz, /jsz, /routez).
	OpsURL    string `json:"ops_url"`
	ClientURL string `json:"client_url,omitempty"` // a node's
	Config    string `json:"config,omitempty"`     // a node's configuration file
	StoreDir  string `json:"store_dir,omitempty"`  // a node's JetStream store
}

// ClusterStatePath is where a running local cluster writes its state.
func ClusterStatePath(varDir string) string { return filepath.Join(varDir, "cluster.json") }

// State is what this cluster writes in <var>/cluster.json.
func (c *Cluster) State() ClusterState {
	st := ClusterState{DevState: DevState{PID: os.Getpid(), NATSURL: c.NATSURL, HTTPURL: c.PageURL, Prefix: c.Config.Prefix,
		NATSPasswordFiles: map[string]string{}}, WebURL: c.WebURL}
	for _, u := range ClusterNATSUsers {
		st.NATSPasswordFiles[u] = ClusterNATSPasswordFile(c.Config.VarDir, u)
	}
	if c.DB != nil {
		st.DatabaseURL = c.DB.URL
	}
	if c.Catcher != nil && c.PageURL != "" {
		st.MailsURL = c.PageURL + "/mails/"
	}
	dir := ClusterDir(c.Config.VarDir)
	for i, p := range c.procs {
		ps := ClusterProcessState{Name: p.name, OpsURL: p.opsURL}
		if i < 3 {
			ps.ClientURL = strings.Split(c.NATSURL, ",")[i]
			ps.Config, ps.StoreDir = filepath.Join(dir, p.name+".conf"), filepath.Join(dir, p.name)
		}
		st.Processes = append(st.Processes, ps)
	}
	return st
}

// RunningCluster reads the ClusterState of the local cluster running on
// varDir; ok is false when none runs there (no file, or its process is
// gone).
func RunningCluster(varDir string) (st ClusterState, ok bool, err error) {
	ok, err = readRunningState(ClusterStatePath(varDir), &st, func() int { return st.PID })
	return st, ok, err
}

// natsNode is one node's configuration.
type natsNode struct {
	Name, Client, Route, Monitor, StoreDir string
	Routes                                 []string // every node's, its own included (ignored by nats-server)
}

// config is the node's nats-server configuration: deploy/nats/nats-server.conf's
// settings (the users of users.conf, JetStream with sync always, the
// cluster "auth" routing to the three nodes), on 127.0.0.1 with this
// node's ports and store. users.conf is beside it (StartCluster writes
// deploy/nats/users.conf there), and the users' passwords come from the
// node's environment (NATS_PASSWORD_<USER>). A test checks that the two
// configurations agree.
func (n natsNode) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s of the local cluster (authctl dev --cluster), written at each start from\n", n.Name)
	fmt.Fprintf(&b, "# deploy/nats/nats-server.conf's settings: edits here are lost.\n\n")
	fmt.Fprintf(&b, "server_name: %s\n", n.Name)
	fmt.Fprintf(&b, "server_tags: %q\n", clusterNodeTag)
	fmt.Fprintf(&b, "listen: %s\n", n.Client)
	fmt.Fprintf(&b, "# deploy/nats/users.conf, copied at each start; passwords from NATS_PASSWORD_<USER>.\n")
	fmt.Fprintf(&b, "include ./users.conf\n")
	fmt.Fprintf(&b, "http: %s\n\n", n.Monitor)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n\n", n.StoreDir)
	fmt.Fprintf(&b, "cluster {\n  name: %s\n  listen: %s\n  routes: [\n", clusterNATSName, n.Route)
	for _, r := range n.Routes {
		fmt.Fprintf(&b, "    %s\n", r)
	}
	fmt.Fprintf(&b, "  ]\n}\n")
	return b.String()
}

// clusterBinaries finds ClusterBinaries in dir and checks nats-server's
// version against the one go.mod pins.
func clusterBinaries(dir string, log *slog.Logger) (map[string]string, error) {
	if dir == "" {
		return nil, errors.New("no directory of binaries: build them with `make cluster` (bin/)")
	}
	bins := map[string]string{}
	var missing []string
	for _, name := range ClusterBinaries {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, name)
			continue
		}
		bins[name] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: missing %s; build them with `make cluster`, or "+
			"`go build -o %s/ ./cmd/... github.com/nats-io/nats-server/v2`", dir, strings.Join(missing, ", "), dir)
	}
	if want := pinnedNATSServer(); want != "" {
		out, err := exec.Command(bins["nats-server"], "--version").Output()
		if got := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nats-server:")); err != nil || got != want {
			log.Warn("nats-server is not the version go.mod pins: rebuild it with `go build -o bin/ github.com/nats-io/nats-server/v2`",
				"binary", bins["nats-server"], "version", got, "pinned", want)
		}
	}
	return bins, nil
}

// pinnedNATSServer is the nats-server module version this program was
// built with ("" when unknown).
func pinnedNATSServer() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range bi.Deps {
		if m.Path == "github.com/nats-io/nats-server/v2" {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return ""
}

// resolvePorts fills in the zero ports with free ones, and replaces each
// taken port by a free one (with a warning). AUTH_WEB_ADDR and
// AUTH_HTTP_ADDR, when set, give the web's and the page's ports.
func resolvePorts(want ClusterPorts, cfg config.Config, log *slog.Logger) (ClusterPorts, error) {
	if config.Explicit("AUTH_WEB_ADDR") {
		want.Web = portNumber(cfg.WebAddr)
	}
	if config.Explicit("AUTH_HTTP_ADDR") {
		want.Page = portNumber(cfg.HTTPAddr)
	}
	got := want
	taken := map[int]bool{}
	var err error
	pick := func(what string, p *int) {
		if err != nil {
			return
		}
		w := *p
		if w > 0 && !taken[w] && portFree(w) {
			taken[w] = true
			return
		}
		for range 20 {
			var ln net.Listener
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return
			}
			*p = ln.Addr().(*net.TCPAddr).Port
			_ = ln.Close()
			if !taken[*p] {
				break
			}
		}
		taken[*p] = true
		if w > 0 {
			log.Warn("port taken: the local cluster uses another", "for", what, "wanted", w, "port", *p)
		}
	}
	for i := range 3 {
		pick(fmt.Sprintf("nats-%d client", i+1), &got.NATSClient[i])
		pick(fmt.Sprintf("nats-%d route", i+1), &got.NATSRoute[i])
		pick(fmt.Sprintf("nats-%d monitoring", i+1), &got.NATSMonitor[i])
	}
	for i := range 2 {
		pick(fmt.Sprintf("commands-%d ops", i+1), &got.Commands[i])
		pick(fmt.Sprintf("projector-%d ops", i+1), &got.Projector[i])
	}
	pick("notifier ops", &got.Notifier)
	pick("web ops", &got.WebOps)
	pick("web", &got.Web)
	pick("page", &got.Page)
	return got, err
}

func portNumber(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// lockedWriter serialises writes with the children's prefixed lines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// servePage serves authctl's page: the processes and their pages, the
// mails (/mails/), /healthz.
func (c *Cluster) servePage(addr string) error {
	mux := http.NewServeMux()
	if c.Catcher != nil {
		mux.Handle("/mails/", http.StripPrefix("/mails", c.Catcher.Handler()))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	// Faults by hand: kill a process (SIGKILL), start it again.
	mux.HandleFunc("POST /processes/{name}/{act}", func(w http.ResponseWriter, r *http.Request) {
		p := c.Process(r.PathValue("name"))
		if p == nil {
			http.NotFound(w, r)
			return
		}
		var err error
		switch r.PathValue("act") {
		case "kill":
			err = p.Kill()
		case "start":
			err = p.Start(r.Context())
		case "restart":
			err = p.Restart(r.Context())
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		c.log.Info("process "+r.PathValue("act"), "process", p.name, "pid", p.PID())
		if r.FormValue("page") == "" { // curl: a line; the page's buttons: back to it
			fmt.Fprintf(w, "%s: %s done, pid %d\n", p.name, r.PathValue("act"), p.PID())
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		type row struct {
			Name, OpsURL string
			PID          int
		}
		var rows []row
		for _, p := range c.procs {
			rows = append(rows, row{p.name, p.opsURL, p.PID()})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = clusterPage.Execute(w, map[string]any{"Web": c.WebURL, "NATS": c.NATSURL, "Mails": c.Catcher != nil, "Rows": rows})
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("authctl's page: %w", err)
	}
	// A web site open in the same browser must not kill processes here.
	c.page = &http.Server{Handler: http.NewCrossOriginProtection().Handler(mux), ReadHeaderTimeout: 5 * time.Second}
	c.PageURL = "http://" + ln.Addr().String()
	go func() {
		if err := c.page.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Warn("cluster page stopped", "err", err)
		}
	}()
	return nil
}

var clusterPage = template.Must(template.New("cluster").Parse(`<!doctype html><meta charset="utf-8"><title>ameli-auth (grappe locale)</title>
<h1>ameli-auth — grappe locale</h1>
<p><a href="{{.Web}}">Site web</a>{{if .Mails}} · <a href="/mails/">Mails reçus</a>{{end}}</p>
<p>NATS : <code>{{.NATS}}</code></p>
<table><tr><th>processus</th><th>pid</th><th>pages</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{if .PID}}{{.PID}}{{else}}arrêté{{end}}</td><td><a href="{{.OpsURL}}/healthz">healthz</a>{{if eq (slice .Name 0 4) "nats"}} · <a href="{{.OpsURL}}/jsz">jsz</a> · <a href="{{.OpsURL}}/routez">routez</a>{{else}} · <a href="{{.OpsURL}}/readyz">readyz</a> · <a href="{{.OpsURL}}/metrics">metrics</a>{{end}}</td>
<td><form method="post" action="/processes/{{.Name}}/{{if .PID}}kill{{else}}start{{end}}"><input type="hidden" name="page" value="1"><button>{{if .PID}}tuer (SIGKILL){{else}}relancer{{end}}</button></form></td></tr>
{{end}}</table>`))
