package io.concord.compat.spring.app;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.cloud.client.discovery.event.HeartbeatEvent;
import org.springframework.cloud.client.loadbalancer.LoadBalanced;
import org.springframework.cloud.context.config.annotation.RefreshScope;
import org.springframework.context.ApplicationListener;
import org.springframework.context.annotation.Bean;
import org.springframework.stereotype.Component;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestTemplate;

/**
 * The small web service the compatibility tests start against concord: it registers
 * itself through Spring Cloud Consul discovery, reads its configuration from Consul
 * KV, and offers a few hooks the tests look at.
 *
 * <ul>
 * <li>{@code GET /hello} answers with this instance's id, so a load-balanced call shows
 * which instance was chosen;</li>
 * <li>{@link Greeter} is {@code @RefreshScope} and reads {@code greeting.message};</li>
 * <li>{@link HeartbeatRecorder} keeps the catalog watch's {@code HeartbeatEvent}s;</li>
 * <li>{@code lbRestTemplate} is a {@code @LoadBalanced} RestTemplate.</li>
 * </ul>
 */
@SpringBootApplication
public class CompatApp {

	public static void main(String[] args) {
		SpringApplication.run(CompatApp.class, args);
	}

	@Bean
	@LoadBalanced
	RestTemplate lbRestTemplate() {
		return new RestTemplate();
	}

	@Bean
	@RefreshScope
	Greeter greeter(@Value("${greeting.message:none}") String message) {
		return new Greeter(message);
	}

	@RestController
	static class HelloController {

		private final String instanceId;

		HelloController(@Value("${spring.cloud.consul.discovery.instance-id:unknown}") String instanceId) {
			this.instanceId = instanceId;
		}

		@GetMapping("/hello")
		String hello() {
			return instanceId;
		}

	}

	/** Reads {@code greeting.message}; rebuilt on every refresh. */
	public static class Greeter {

		private final String message;

		public Greeter(String message) {
			this.message = message;
		}

		public String message() {
			return message;
		}

	}

	/** Every {@link HeartbeatEvent} value (the catalog's X-Consul-Index), in order. */
	@Component
	public static class HeartbeatRecorder implements ApplicationListener<HeartbeatEvent> {

		private final List<Object> values = new CopyOnWriteArrayList<>();

		@Override
		public void onApplicationEvent(HeartbeatEvent event) {
			values.add(event.getValue());
		}

		public List<Object> values() {
			return List.copyOf(values);
		}

	}

}
