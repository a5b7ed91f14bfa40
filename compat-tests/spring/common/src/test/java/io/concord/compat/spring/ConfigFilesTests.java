package io.concord.compat.spring;

import java.time.Duration;
import java.util.Map;

import io.concord.compat.spring.app.CompatApp.Greeter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.core.env.Environment;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Config format FILES with profile "dev": whole files as single keys
 * ({@code config/filesapp-dev.yml}, {@code config/filesapp.properties},
 * {@code config/application.yaml}), each fetched with {@code GET /v1/kv/<key>} (404s
 * for the names that do not exist) and watched with
 * {@code GET /v1/kv/<key>?recurse&wait=1s&index=N}.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConfigFilesTests extends ConcordTestBase {

	static final String NAME = "filesapp";

	static ConfigurableApplicationContext app;

	@BeforeAll
	static void writeKeysAndStart() {
		setup(() -> {
			consul.kvPut("config/application.yaml", """
					compat:
					  level: application
					  shared: from-application-yaml
					""");
			consul.kvPut("config/filesapp.properties", """
					compat.level=filesapp
					compat.from-properties=props
					""");
			consul.kvPut("config/filesapp-dev.yml", """
					compat:
					  level: filesapp-dev
					greeting:
					  message: files v1
					""");
			// The docs name profile files <app>-<profile>.<ext>. ConsulConfigProperties only
		// switches the separator to "-" in its @PostConstruct, which the ConfigData
		// resolver (spring.config.import=consul:) never calls, so it stays "," there;
		// set it explicitly, as FILES users on ConfigData have to.
		app = startApp(NAME, newInstanceId(NAME), Map.of("spring.cloud.consul.config.format", "FILES",
				"spring.cloud.consul.config.profile-separator", "-"), "dev");
		});
	}

	@Test
	@Order(1)
	void profileFileWins() {
		assertEquals("filesapp-dev", env().getProperty("compat.level"));
	}

	@Test
	@Order(2)
	void filesOfEachExtensionAreParsed() {
		Environment env = env();
		assertEquals("from-application-yaml", env.getProperty("compat.shared"), ".yaml");
		assertEquals("props", env.getProperty("compat.from-properties"), ".properties");
		assertEquals("files v1", env.getProperty("greeting.message"), ".yml");
	}

	@Test
	@Order(3)
	void fileChangeReachesRefreshScopeBean() {
		assertEquals("files v1", app.getBean(Greeter.class).message());
		consul.kvPut("config/filesapp-dev.yml", """
				compat:
				  level: filesapp-dev
				greeting:
				  message: files v2
				""");
		await(Duration.ofSeconds(25), () -> {
			String m = app.getBean(Greeter.class).message();
			return "files v2".equals(m) ? null : "@RefreshScope bean still says '" + m + "'";
		});
	}

	static Environment env() {
		return app.getEnvironment();
	}

}
