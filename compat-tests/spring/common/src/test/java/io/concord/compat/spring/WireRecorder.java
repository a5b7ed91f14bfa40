package io.concord.compat.spring;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

/**
 * A recording HTTP proxy between a Spring app and concord: the app is pointed at
 * {@link #port()}, every request is forwarded unchanged (raw path and query, headers,
 * body) and method, raw URI, X-Consul-Token header and the status are kept. Lets a
 * test assert what went over the wire (e.g. how the ACL token travelled).
 */
public final class WireRecorder implements AutoCloseable {

	public record Exchange(String method, String rawUri, String tokenHeader, int status) {

		public boolean tokenInQuery(String token) {
			return rawUri.contains("token=" + token);
		}

		@Override
		public String toString() {
			return method + " " + rawUri + (tokenHeader == null ? "" : " [X-Consul-Token: " + tokenHeader + "]")
					+ " -> " + status;
		}
	}

	private static final Set<String> SKIP_REQUEST_HEADERS = Set.of("connection", "content-length", "expect", "host",
			"upgrade", "keep-alive", "transfer-encoding", "te", "trailer", "proxy-connection", "http2-settings");

	private static final Set<String> SKIP_RESPONSE_HEADERS = Set.of("content-length", "transfer-encoding",
			"connection", "keep-alive", "date");

	private final HttpServer server;

	private final ExecutorService pool = Executors.newCachedThreadPool(r -> {
		Thread t = new Thread(r, "wire-recorder");
		t.setDaemon(true);
		return t;
	});

	private final HttpClient client = HttpClient.newBuilder()
		.version(HttpClient.Version.HTTP_1_1)
		.connectTimeout(Duration.ofSeconds(2))
		.executor(pool)
		.build();

	private final String target;

	private final List<Exchange> exchanges = new ArrayList<>();

	private final String name;

	/** name: the wire log goes to compat.logdir/name-wire.log on close. */
	public WireRecorder(String target, String name) throws IOException {
		this.target = target;
		this.name = name;
		this.server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 64);
		this.server.setExecutor(pool);
		this.server.createContext("/", this::forward);
		this.server.start();
	}

	public int port() {
		return server.getAddress().getPort();
	}

	public List<Exchange> exchanges() {
		synchronized (exchanges) {
			return List.copyOf(exchanges);
		}
	}

	private void forward(HttpExchange ex) throws IOException {
		String rawUri = ex.getRequestURI().getRawPath()
				+ (ex.getRequestURI().getRawQuery() == null ? "" : "?" + ex.getRequestURI().getRawQuery());
		int status = 502;
		try {
			byte[] body;
			try (InputStream in = ex.getRequestBody()) {
				body = in.readAllBytes();
			}
			HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(target + rawUri)).timeout(Duration.ofMinutes(11));
			ex.getRequestHeaders().forEach((k, vs) -> {
				if (!SKIP_REQUEST_HEADERS.contains(k.toLowerCase(Locale.ROOT))) {
					vs.forEach(v -> b.header(k, v));
				}
			});
			b.method(ex.getRequestMethod(), body.length == 0 ? HttpRequest.BodyPublishers.noBody()
					: HttpRequest.BodyPublishers.ofByteArray(body));
			HttpResponse<byte[]> r;
			try {
				r = client.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
			}
			catch (InterruptedException e) {
				Thread.currentThread().interrupt();
				throw new IOException(e);
			}
			status = r.statusCode();
			r.headers().map().forEach((k, vs) -> {
				if (!SKIP_RESPONSE_HEADERS.contains(k.toLowerCase(Locale.ROOT)) && !k.startsWith(":")) {
					vs.forEach(v -> ex.getResponseHeaders().add(k, v));
				}
			});
			byte[] out = r.body();
			ex.sendResponseHeaders(status, out.length == 0 ? -1 : out.length);
			if (out.length > 0) {
				try (OutputStream os = ex.getResponseBody()) {
					os.write(out);
				}
			}
		}
		catch (IOException e) {
			try {
				ex.sendResponseHeaders(502, -1);
			}
			catch (IOException | RuntimeException ignored) {
				// already answered
			}
			throw e;
		}
		finally {
			ex.close();
			synchronized (exchanges) {
				exchanges.add(new Exchange(ex.getRequestMethod(), rawUri,
						ex.getRequestHeaders().getFirst("X-Consul-Token"), status));
			}
		}
	}

	@Override
	public void close() {
		server.stop(0);
		pool.shutdownNow();
		try {
			java.nio.file.Path dir = java.nio.file.Path.of(System.getProperty("compat.logdir", "target/concord-logs"));
			java.nio.file.Files.createDirectories(dir);
			StringBuilder sb = new StringBuilder();
			exchanges().forEach(x -> sb.append(x).append('\n'));
			java.nio.file.Files.writeString(dir.resolve(name + "-wire.log"), sb);
		}
		catch (IOException e) {
			// diagnostics only
		}
	}

}
