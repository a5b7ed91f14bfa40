package io.concord.compat.spring;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.Supplier;

import io.concord.compat.spring.app.CompatApp;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInfo;

import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Starts one concord dev agent per test class and Spring Boot apps against it.
 *
 * <p>Apps are started with {@link #startApp}; every app a class started is closed
 * before its concord stops. Tests share state inside a class (ordered methods), never
 * across classes.
 */
public abstract class ConcordTestBase {

	protected static Concord concord;

	protected static ConsulHttp consul;

	private static final List<ConfigurableApplicationContext> APPS = new ArrayList<>();

	/**
	 * A failure while setting up the class (concord or an app did not start). Kept
	 * and rethrown by every test, so each test shows up failed in the reports instead
	 * of the class vanishing behind one setup error.
	 */
	private static Throwable setupFailure;

	@BeforeAll
	static void startConcord(TestInfo info) {
		setupFailure = null;
		writeVersions();
		try {
			concord = Concord.start(info.getTestClass().map(Class::getSimpleName).orElse("concord"));
			consul = concord.http();
		}
		catch (Exception | Error e) {
			setupFailure = e;
		}
	}

	/** Runs class setup; a failure is reported by each test of the class. */
	protected static void setup(ThrowingRunnable r) {
		if (setupFailure != null) {
			return;
		}
		try {
			r.run();
		}
		catch (Throwable t) {
			setupFailure = t;
		}
	}

	@FunctionalInterface
	protected interface ThrowingRunnable {

		void run() throws Exception;

	}

	@BeforeEach
	void failIfSetupFailed() {
		if (setupFailure != null) {
			throw new AssertionError("class setup failed: " + setupFailure, setupFailure);
		}
	}

	/** Records the library versions under test for the report (target/compat-versions.properties). */
	private static void writeVersions() {
		String file = System.getProperty("compat.versionsfile");
		if (file == null) {
			return;
		}
		java.util.Properties p = new java.util.Properties();
		p.setProperty("spring-boot", org.springframework.boot.SpringBootVersion.getVersion());
		p.setProperty("spring-cloud-consul", jarVersion("org.springframework.cloud.consul.discovery.ConsulDiscoveryClient")
				+ " (discovery), " + jarVersion("org.springframework.cloud.consul.config.ConsulPropertySource") + " (config)");
		p.setProperty("spring-cloud-commons", jarVersion("org.springframework.cloud.client.discovery.DiscoveryClient"));
		try (java.io.Writer w = java.nio.file.Files.newBufferedWriter(java.nio.file.Path.of(file))) {
			p.store(w, null);
		}
		catch (java.io.IOException e) {
			// informational only
		}
	}

	private static String jarVersion(String className) {
		try {
			String loc = Class.forName(className).getProtectionDomain().getCodeSource().getLocation().getPath();
			java.util.regex.Matcher m = java.util.regex.Pattern.compile("-(\\d[^/]*)\\.jar$").matcher(loc);
			return m.find() ? m.group(1) : "?";
		}
		catch (ReflectiveOperationException | RuntimeException e) {
			return "?";
		}
	}

	@AfterAll
	static void stopConcord() {
		closeApps();
		if (concord != null) {
			concord.close();
			concord = null;
		}
	}

	/** Closes every app still running (they deregister). */
	protected static void closeApps() {
		synchronized (APPS) {
			for (ConfigurableApplicationContext app : APPS) {
				try {
					app.close();
				}
				catch (RuntimeException e) {
					// best effort
				}
			}
			APPS.clear();
		}
	}

	/** "4" or "5": the Spring Cloud Consul line under test. */
	protected static String line() {
		return System.getProperty("compat.line", "?");
	}

	/** A Consul-safe instance id for a new app: name-xxxxxxxx. */
	protected static String newInstanceId(String name) {
		return name + "-" + UUID.randomUUID().toString().substring(0, 8);
	}

	/**
	 * Settings every app gets: the concord address, a fixed instance id, loopback
	 * address, quick checks and watches. {@code overrides} (may be empty) replace or
	 * add to them; a null value removes a default.
	 */
	protected static Map<String, String> baseProps(String name, String instanceId) {
		Map<String, String> p = new LinkedHashMap<>();
		p.put("spring.application.name", name);
		p.put("server.port", "0");
		p.put("server.address", "127.0.0.1");
		p.put("server.tomcat.basedir", "target/tomcat");
		p.put("spring.cloud.consul.host", "127.0.0.1");
		p.put("spring.cloud.consul.port", Integer.toString(concord.port()));
		p.put("spring.cloud.consul.discovery.instance-id", instanceId);
		p.put("spring.cloud.consul.discovery.ip-address", "127.0.0.1");
		p.put("spring.cloud.consul.discovery.prefer-ip-address", "true");
		p.put("spring.cloud.consul.discovery.health-check-interval", "1s");
		p.put("spring.cloud.consul.config.watch.wait-time", "1");
		p.put("spring.cloud.consul.config.watch.delay", "500");
		return p;
	}

	/** Starts CompatApp with baseProps + overrides (null value = remove), profiles optional. */
	protected static ConfigurableApplicationContext startApp(String name, String instanceId,
			Map<String, String> overrides, String... profiles) {
		Map<String, String> p = baseProps(name, instanceId);
		overrides.forEach((k, v) -> {
			if (v == null) {
				p.remove(k);
			}
			else {
				p.put(k, v);
			}
		});
		List<String> args = new ArrayList<>();
		p.forEach((k, v) -> args.add("--" + k + "=" + v));
		if (profiles.length > 0) {
			args.add("--spring.profiles.active=" + String.join(",", profiles));
		}
		ConfigurableApplicationContext ctx = new SpringApplicationBuilder(CompatApp.class)
			.run(args.toArray(String[]::new));
		synchronized (APPS) {
			APPS.add(ctx);
		}
		return ctx;
	}

	/** Closes an app started by {@link #startApp} (shutdown deregisters it). */
	protected static void stopApp(ConfigurableApplicationContext ctx) {
		synchronized (APPS) {
			APPS.remove(ctx);
		}
		ctx.close();
	}

	protected static int webPort(ConfigurableApplicationContext ctx) {
		return Integer.parseInt(ctx.getEnvironment().getRequiredProperty("local.server.port"));
	}

	/**
	 * Polls {@code problem} until it returns null (= condition holds) or the timeout
	 * passes; then fails with the last problem and the recent exchanges with concord.
	 */
	protected static void await(Duration timeout, Supplier<String> problem) {
		long deadline = System.nanoTime() + timeout.toNanos();
		String last;
		while (true) {
			try {
				last = problem.get();
			}
			catch (RuntimeException | AssertionError e) {
				last = e.toString();
			}
			if (last == null) {
				return;
			}
			if (System.nanoTime() > deadline) {
				throw new AssertionError("not within " + timeout + ": " + last + "\n recent requests:\n  "
						+ consul.journal());
			}
			try {
				Thread.sleep(200);
			}
			catch (InterruptedException e) {
				Thread.currentThread().interrupt();
				throw new AssertionError(e);
			}
		}
	}

	/** Sorted instance ids. */
	protected static List<String> ids(List<org.springframework.cloud.client.ServiceInstance> instances) {
		return instances.stream()
			.map(org.springframework.cloud.client.ServiceInstance::getInstanceId)
			.sorted()
			.collect(java.util.stream.Collectors.toList());
	}

	protected static List<String> texts(com.fasterxml.jackson.databind.JsonNode array) {
		List<String> out = new ArrayList<>();
		array.forEach(n -> out.add(n.asText()));
		return out;
	}

	/** A request to an app's own web port (actuator endpoints, /hello). */
	protected static java.net.http.HttpResponse<String> appHttp(int port, String method, String path, String json)
			throws Exception {
		java.net.http.HttpRequest.Builder b = java.net.http.HttpRequest
			.newBuilder(java.net.URI.create("http://127.0.0.1:" + port + path))
			.timeout(Duration.ofSeconds(20));
		if (json != null) {
			b.header("Content-Type", "application/json");
			b.method(method, java.net.http.HttpRequest.BodyPublishers.ofString(json));
		}
		else {
			b.method(method, java.net.http.HttpRequest.BodyPublishers.noBody());
		}
		return java.net.http.HttpClient.newHttpClient().send(b.build(), java.net.http.HttpResponse.BodyHandlers.ofString());
	}

	/** Fails with the journal of recent exchanges attached. */
	protected static AssertionError fail(String message) {
		return new AssertionError(message + "\n recent requests:\n  " + consul.journal());
	}

}
