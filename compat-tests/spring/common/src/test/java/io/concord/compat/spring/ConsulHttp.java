package io.concord.compat.spring;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.MissingNode;

/**
 * The test's own view of the server: plain HTTP with the JDK client, independent of
 * the Spring client under test. Every exchange is kept in a short journal so a failing
 * assertion can show what was asked and answered.
 */
public final class ConsulHttp {

	public static final ObjectMapper JSON = new ObjectMapper();

	private final String base;

	private final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

	private final List<String> journal = new ArrayList<>();

	public ConsulHttp(String base) {
		this.base = base;
	}

	public record Resp(String method, String path, int status, String index, String contentType, String body) {

		public JsonNode json() {
			if (body == null || body.isBlank()) {
				return MissingNode.getInstance();
			}
			try {
				return JSON.readTree(body);
			}
			catch (IOException e) {
				throw new AssertionError("not JSON: " + this, e);
			}
		}

		@Override
		public String toString() {
			String b = body == null ? "" : body;
			if (b.length() > 1500) {
				b = b.substring(0, 1500) + "...";
			}
			return method + " " + path + " -> " + status + " [X-Consul-Index: " + index + ", Content-Type: "
					+ contentType + "] " + b;
		}
	}

	public Resp get(String path) {
		return send("GET", path, null);
	}

	public Resp put(String path, String body) {
		return send("PUT", path, body);
	}

	public Resp send(String method, String path, String body) {
		HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(30));
		b.method(method, body == null ? HttpRequest.BodyPublishers.noBody()
				: HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
		try {
			HttpResponse<String> r = client.send(b.build(), HttpResponse.BodyHandlers.ofString());
			Resp resp = new Resp(method, path, r.statusCode(), r.headers().firstValue("X-Consul-Index").orElse(null),
					r.headers().firstValue("Content-Type").orElse(null), r.body());
			synchronized (journal) {
				journal.add(resp.toString());
				if (journal.size() > 40) {
					journal.remove(0);
				}
			}
			return resp;
		}
		catch (IOException e) {
			throw new UncheckedIOException(method + " " + base + path, e);
		}
		catch (InterruptedException e) {
			Thread.currentThread().interrupt();
			throw new IllegalStateException(e);
		}
	}

	/** The last few exchanges, newest last, for assertion messages. */
	public String journal() {
		synchronized (journal) {
			return String.join("\n  ", journal);
		}
	}

	/** PUT /v1/kv/key with a raw value; asserts success. */
	public void kvPut(String key, String value) {
		Resp r = put("/v1/kv/" + key, value);
		if (r.status() != 200 || !"true".equals(r.body().trim())) {
			throw new AssertionError("KV write failed: " + r);
		}
	}

	public void kvDelete(String key) {
		Resp r = send("DELETE", "/v1/kv/" + key, null);
		if (r.status() != 200) {
			throw new AssertionError("KV delete failed: " + r);
		}
	}

	/** /v1/kv/key value decoded, or null on 404. */
	public String kvGet(String key) {
		Resp r = get("/v1/kv/" + key);
		if (r.status() == 404) {
			return null;
		}
		JsonNode v = r.json().path(0).path("Value");
		return v.isNull() || v.isMissingNode() ? "" : new String(Base64.getDecoder().decode(v.asText()), StandardCharsets.UTF_8);
	}

	/** The entry for id in GET /v1/agent/services, or a missing node. */
	public JsonNode agentService(String id) {
		return get("/v1/agent/services").json().path(id);
	}

	/** The check with this CheckID in GET /v1/agent/checks, or a missing node. */
	public JsonNode agentCheck(String checkId) {
		return get("/v1/agent/checks").json().path(checkId);
	}

}
