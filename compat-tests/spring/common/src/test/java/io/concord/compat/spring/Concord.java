package io.concord.compat.spring;

import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * One concord dev agent on free loopback ports. Started per test class (see
 * {@link ConcordTestBase}), stopped with SIGINT.
 *
 * <p>The binary comes from the system property {@code concord.bin} (the Maven
 * poms default it to the repository's target/release/concord), or the
 * environment variable {@code CONCORD_BIN}.
 */
public final class Concord implements AutoCloseable {

	private static final Set<Integer> HANDED_OUT = new HashSet<>();

	private final Process process;

	private final int httpPort;

	private final Path log;

	private final ConsulHttp http;

	private Concord(Process process, int httpPort, Path log) {
		this.process = process;
		this.httpPort = httpPort;
		this.log = log;
		this.http = new ConsulHttp("http://127.0.0.1:" + httpPort);
	}

	public static String binary() {
		String bin = System.getProperty("concord.bin");
		if (bin == null || bin.isBlank()) {
			bin = System.getenv("CONCORD_BIN");
		}
		if (bin == null || bin.isBlank()) {
			throw new IllegalStateException("set -Dconcord.bin=/path/to/concord (or CONCORD_BIN)");
		}
		File f = new File(bin);
		if (!f.canExecute()) {
			throw new IllegalStateException("concord binary not executable: " + f.getAbsolutePath()
					+ " (build it with `cargo build --release` at the repository root)");
		}
		return f.getAbsolutePath();
	}

	/** Starts a dev agent and waits until it has a leader. */
	public static Concord start(String name) throws IOException, InterruptedException {
		String bin = binary();
		Path logDir = Path.of(System.getProperty("compat.logdir", "target/concord-logs"));
		Files.createDirectories(logDir);
		IOException last = null;
		for (int attempt = 0; attempt < 3; attempt++) {
			int http = freePort();
			List<String> cmd = new ArrayList<>(List.of(bin, "agent", "-dev", "-http-port=" + http, "-dns-port=-1",
					"-server-port=" + freePort(), "-serf-lan-port=" + freePort(), "-serf-wan-port=" + freePort(),
					"-grpc-port=-1", "-node=spring-it"));
			Path log = logDir.resolve(name + (attempt == 0 ? "" : "-" + attempt) + ".log");
			Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
			Concord c = new Concord(p, http, log);
			try {
				c.awaitLeader(Duration.ofSeconds(20));
				return c;
			}
			catch (IOException e) {
				last = e;
				c.close();
			}
		}
		throw last;
	}

	private void awaitLeader(Duration timeout) throws IOException, InterruptedException {
		long deadline = System.nanoTime() + timeout.toNanos();
		HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
		String lastBody = null;
		while (System.nanoTime() < deadline) {
			if (!process.isAlive()) {
				throw new IOException("concord exited with " + process.exitValue() + ", see " + log);
			}
			try {
				HttpResponse<String> r = client.send(
						HttpRequest.newBuilder(URI.create(url() + "/v1/status/leader"))
							.timeout(Duration.ofSeconds(2))
							.build(),
						HttpResponse.BodyHandlers.ofString());
				lastBody = r.body();
				String b = lastBody == null ? "" : lastBody.trim();
				if (r.statusCode() == 200 && b.startsWith("\"") && b.length() > 2) {
					return;
				}
			}
			catch (IOException e) {
				// not listening yet
			}
			Thread.sleep(100);
		}
		throw new IOException("concord had no leader within " + timeout + " (last /v1/status/leader: " + lastBody
				+ "), see " + log);
	}

	public int port() {
		return httpPort;
	}

	public String url() {
		return "http://127.0.0.1:" + httpPort;
	}

	public ConsulHttp http() {
		return http;
	}

	public Path log() {
		return log;
	}

	@Override
	public void close() {
		if (!process.isAlive()) {
			return;
		}
		try {
			// SIGINT, as the brief (and Consul) expect for a graceful stop.
			new ProcessBuilder("kill", "-INT", Long.toString(process.pid())).start().waitFor(5, TimeUnit.SECONDS);
			if (!process.waitFor(10, TimeUnit.SECONDS)) {
				process.destroyForcibly();
				process.waitFor(5, TimeUnit.SECONDS);
			}
		}
		catch (IOException | InterruptedException e) {
			process.destroyForcibly();
		}
	}

	/** A loopback TCP port that nothing listens on and that this JVM has not handed out before. */
	public static synchronized int freePort() throws IOException {
		for (int i = 0; i < 50; i++) {
			try (ServerSocket s = new ServerSocket(0)) {
				s.setReuseAddress(true);
				int p = s.getLocalPort();
				if (HANDED_OUT.add(p)) {
					return p;
				}
			}
		}
		throw new IOException("no free port");
	}

}
